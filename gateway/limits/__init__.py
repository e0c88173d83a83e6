"""Access control and input limits: virtual keys, rate limits, budgets, deadlines, redaction.

``install(app)`` adds the middlewares and ``/admin/keys`` (from ``create_app``);
``startup(app)`` opens the key store once the runtime and shared state exist (from the lifespan).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("shunter")

HOW_TO = (
    "auth is off: anyone who can reach this port may spend the upstreams' money. To turn it on set "
    "'server: {auth: true}' in the policy file, then create a key with "
    "'shunter keys create --config <file> --budget 20 --rpm 60 --policies <policy>' "
    "(or POST /admin/keys with SHUNTER_ADMIN_KEY). See docs/security.md."
)


def document_openapi(schema: dict) -> dict:
    from gateway.limits.openapi import document

    return document(schema)


def install(app: Any) -> None:
    from gateway.limits import admin, secrets
    from gateway.limits.deadline import DeadlineMiddleware
    from gateway.limits.guard import AuthMiddleware

    secrets.install_log_redaction()
    app.add_middleware(DeadlineMiddleware)
    app.add_middleware(AuthMiddleware)  # added last: outermost, so refused requests cost little
    app.include_router(admin.router)


def startup(app: Any) -> None:
    from gateway.limits import secrets
    from gateway.limits.guard import Guard
    from gateway.limits.keys import KeyStore
    from gateway.state import InProcessState

    cfg = app.state.runtime.cfg
    secrets.register(cfg)
    app.state.limits = Guard(KeyStore(cfg.server.outcomes_path), app.state.shared)
    if not isinstance(app.state.shared, InProcessState):  # replicas share breaker openings
        import asyncio

        from gateway.upstream.breaker import sync_loop

        app.state.breaker_sync = asyncio.get_running_loop().create_task(sync_loop(app), name="breaker-sync")
    if not cfg.server.auth:
        log.warning(HOW_TO)
    elif not app.state.limits.keys.list():
        log.warning(
            "auth is on and no API key exists yet: create one with 'shunter keys create --config <file> --rpm 60 --budget 20'"
        )
