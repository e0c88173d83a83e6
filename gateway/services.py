"""``Services``: everything a request needs beyond its own body, built once and closed in reverse.

``Services.start(settings)`` (called by the app's lifespan) builds, in this order: the local
upstream servers a policy asks to launch, the runtime holder (policies, clients, routers), the
shared state, the online learner, the outcome store and recorder, the guard (keys, limits), the
background tasks (breaker sync with Redis) and the policy reloader. ``close()`` undoes them in
reverse order. The object is passed explicitly: handlers read it from ``app.state.services``
through :func:`of`, and request-time state lives in no module global.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway import metrics, secrets
from gateway.learning.online import OnlineLearner
from gateway.limits.guard import Guard
from gateway.outcomes.recorder import Recorder
from gateway.outcomes.stores import Store, make_store
from gateway.policy.loader import find_config, load_config
from gateway.reload import Reloader, export_objectives
from gateway.runtime import (
    Encoders,
    Runtime,
    RuntimeHolder,
    build_clients,
    build_policies,
    make_embedder,
    needs_encoder,
)
from gateway.settings import Settings
from gateway.state import InProcessState, SharedState, make_state
from gateway.upstream.launcher import LocalServer, start_local_servers

if TYPE_CHECKING:
    from gateway.outcomes.record import Outcome


FinishHook = Callable[["Services", "Outcome", Any], None]
"""Called by ``pipeline.finish`` once per finished request, after the record is submitted, with
the request context (``gateway.pipeline.context.RequestContext``)."""


@dataclass
class Services:
    settings: Settings
    runtimes: RuntimeHolder
    encoders: Encoders
    shared: SharedState
    learner: OnlineLearner
    store: Store
    recorder: Recorder
    guard: Guard
    reloader: Reloader
    local_servers: list[LocalServer] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    finish_hooks: list[FinishHook] = field(default_factory=list)
    shadow: Any = None  # gateway.learning.shadow.ShadowService
    ready: bool = False

    @property
    def runtime(self) -> Runtime:
        return self.runtimes.current

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        path = find_config(settings.config)
        cfg = load_config(path)
        local_servers, launched = await start_local_servers(cfg.upstreams)  # one that cannot start is left out
        encoders = Encoders(settings.encoder_threads)
        embedder = make_embedder(settings, encoders) if needs_encoder(cfg) else None
        policies = build_policies(cfg, path.parent, None, encoders)
        rt = Runtime(cfg, path, build_clients(cfg, launched), policies, embedder)
        export_objectives(rt)
        runtimes = RuntimeHolder(rt)
        shared = make_state(secrets.resolve(cfg.server.redis_url), cfg.server.redis)
        learner = OnlineLearner(shared, settings.bandit_cache_s, settings.bandit_seed)
        store = make_store(cfg.server)
        recorder = Recorder(store, cfg.server.outcome_queue_size)
        guard = Guard.open(cfg, shared)
        reloader = Reloader(
            runtimes,
            path,
            launched,
            encoders,
            lambda c: make_embedder(settings, encoders) if needs_encoder(c) else None,
        )
        reloader.on_swap.append(lambda _rt: learner.invalidate())
        svc = cls(settings, runtimes, encoders, shared, learner, store, recorder, guard, reloader, local_servers)
        from gateway.learning.shadow import ShadowService

        svc.shadow = ShadowService(store, shared)
        svc.finish_hooks.append(svc.shadow.finish_hook)
        await recorder.start()
        if not isinstance(shared, InProcessState):  # replicas share breaker openings
            from gateway.upstream.breaker import sync_loop

            svc.tasks.append(asyncio.create_task(sync_loop(runtimes, shared), name="breaker-sync"))
        if settings.watch:
            reloader.start()
        try:
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, lambda: asyncio.ensure_future(reloader.reload("sighup"))
            )
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
        svc.ready = True
        return svc

    async def close(self) -> None:
        """Undo ``start`` in reverse order (uvicorn has drained in-flight requests by now)."""
        self.ready = False
        await self.reloader.stop()
        for task in reversed(self.tasks):
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self.tasks.clear()
        if self.shadow is not None:
            await self.shadow.aclose()  # before the store and the clients close
        await self.guard.drain()
        await self.recorder.stop()  # closes the store
        for c in self.runtime.clients.values():
            await c.aclose()
        await self.shared.close()
        for srv in reversed(self.local_servers):
            await srv.stop()
        metrics.mark_process_dead(os.getpid())  # multiprocess mode: drop this worker's live gauges


def of(app: Any) -> Services:
    """The services of a started app (``create_app`` sets ``None`` until the lifespan ran)."""
    svc: Services | None = app.state.services
    if svc is None:
        from gateway.errors import APIError

        raise APIError(503, "The gateway is starting.", code="not_ready")
    return svc
