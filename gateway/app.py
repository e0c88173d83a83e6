"""``create_app``: routes, middlewares and the lifespan that builds the ``Services``; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import __version__, limits, logs, metrics
from gateway.api import admin, feedback, health, keys, models
from gateway.api.endpoints import HotRoutes, schema_routes
from gateway.errors import APIError, api_error_handler, http_handler, unhandled_handler, validation_handler
from gateway.ingress import ENDPOINTS
from gateway.protocol import ChatCompletionRequest, CompletionRequest, FeedbackRequest
from gateway.services import Services
from gateway.settings import Settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    svc = await Services.start(app.state.settings)
    app.state.services = svc
    try:
        yield
    finally:
        await svc.close()


def _openapi(app: FastAPI) -> Any:
    from fastapi.openapi.utils import get_openapi

    documented = schema_routes(ENDPOINTS)

    def build() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, routes=documented + app.routes, description=app.description
        )
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
        exception_handlers={
            APIError: api_error_handler,
            RequestValidationError: validation_handler,
            StarletteHTTPException: http_handler,
            Exception: unhandled_handler,
        },
    )
    app.state.settings = settings = settings or Settings()
    logs.configure(settings.log_level)
    metrics.RETRAINS.root = settings.retrain_dir
    app.state.services = None  # set by the lifespan: gateway.services.of(app)
    for r in (models.router, health.router, admin.router, feedback.router, feedback.admin_router, keys.router):
        app.include_router(r)
    app.add_middleware(HotRoutes, ingresses=ENDPOINTS)  # added first: innermost, inside auth and deadline
    limits.install(app)  # auth + deadline middlewares
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
