"""``create_app``: wires the parts together; nothing else lives here."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import __version__, limits, logs, metrics
from gateway.api import admin, chat, feedback, health, models
from gateway.api.fastpath import FastPathMiddleware
from gateway.errors import APIError, api_error_handler, http_handler, unhandled_handler, validation_handler
from gateway.learning import online
from gateway.limits import secrets
from gateway.outcomes.recorder import Recorder
from gateway.outcomes.stores import make_store
from gateway.policy.loader import find_config, load_config
from gateway.policy.reload import Reloader, _export_objectives
from gateway.protocol import ChatCompletionRequest, CompletionRequest, FeedbackRequest
from gateway.runtime import Runtime, build_clients, build_policies, needs_encoder
from gateway.settings import Settings
from gateway.state import make_state
from gateway.upstream.launcher import start_local_servers

log = logging.getLogger("shunter")


def make_embedder(settings: Settings):
    from gateway import metrics
    from routers.batching import AsyncEmbedder
    from routers.encoder import Encoder

    def on_batch(size: int, seconds: float) -> None:
        metrics.EMBEDDING_BATCH.observe(size)
        metrics.EMBEDDING_DURATION.observe(seconds)

    def on_cache(hit: bool) -> None:
        metrics.CACHE.labels("embedding", "hit" if hit else "miss").inc()

    encoder = Encoder.default()  # threads: SHUNTER_ENCODER_THREADS, read by the encoder itself
    return AsyncEmbedder(
        encoder,
        max_batch=settings.embed_max_batch,
        max_wait_ms=settings.embed_max_wait_ms,
        pad_slack=settings.embed_pad_slack,
        max_call_tokens=settings.embed_max_call_tokens,
        cache_size=settings.embed_cache_size,
        on_batch=on_batch,
        on_cache=on_cache,
    )


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    path = find_config(settings.config)
    cfg = load_config(path)
    locals_, launched = await start_local_servers(cfg.upstreams)  # one that cannot start is left out
    embedder = make_embedder(settings) if needs_encoder(cfg) else None
    policies = build_policies(cfg, path.parent)
    clients = build_clients(cfg, launched)
    app.state.runtime = Runtime(cfg, path, clients, policies, embedder)
    _export_objectives(app.state.runtime)
    app.state.loaded_at = time.time()
    app.state.shared = make_state(secrets.resolve(cfg.server.redis_url), cfg.server.redis)
    online.bind(app.state.shared)
    app.state.store = make_store(cfg.server)
    app.state.recorder = Recorder(app.state.store, cfg.server.outcome_queue_size)
    limits.startup(app)  # virtual keys, rate limits, budgets (gateway/limits)
    await app.state.recorder.start()
    app.state.reloader = Reloader(app, path, launched)
    if settings.watch:
        app.state.reloader.start()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(app.state.reloader.reload("sighup")))
    except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
        pass
    app.state.ready = True
    try:
        yield
    finally:
        app.state.ready = False
        await app.state.reloader.stop()
        await app.state.recorder.stop()  # uvicorn has drained in-flight requests by now
        for c in app.state.runtime.clients.values():
            await c.aclose()
        await app.state.shared.close()
        for srv in locals_:
            await srv.stop()
        metrics.mark_process_dead(os.getpid())  # multiprocess mode: drop this worker's live gauges


def _openapi(app: FastAPI):
    from fastapi.openapi.utils import get_openapi

    def build() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ChatCompletionRequest, CompletionRequest, FeedbackRequest):
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            comps.update(js.pop("$defs", {}))
            comps[model.__name__] = js
        app.openapi_schema = schema = limits.document_openapi(schema)  # error, SSE and text responses
        return schema

    return build


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="Shunter",
        version=__version__,
        description="OpenAI-compatible LLM routing gateway.",
        lifespan=lifespan,
    )
    app.state.settings = settings = settings or Settings()
    logs.configure(settings.log_level)
    metrics.RETRAINS.root = settings.retrain_dir
    app.state.ready = False
    app.add_exception_handler(APIError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_handler)
    app.add_exception_handler(Exception, unhandled_handler)
    for r in (chat.router, models.router, health.router, admin.router, feedback.router, feedback.admin_router):
        app.include_router(r)
    app.add_middleware(FastPathMiddleware)  # innermost: hot endpoints skip FastAPI routing (perf)
    limits.install(app)  # auth + deadline middlewares, /admin/keys
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
