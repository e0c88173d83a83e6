"""Access control and input limits: virtual keys, rate limits, budgets, deadlines, redaction.

``install(app)`` adds the middlewares (from ``create_app``; ``/admin/keys`` is ``gateway.api.keys``);
``Guard.open`` (from ``Services.start``) opens the key store once the runtime and shared state exist.
"""

from __future__ import annotations

from typing import Any

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
    from gateway import secrets
    from gateway.limits.deadline import DeadlineMiddleware
    from gateway.limits.guard import AuthMiddleware

    secrets.install_log_redaction()
    app.add_middleware(DeadlineMiddleware)
    app.add_middleware(AuthMiddleware)  # added last: outermost, so refused requests cost little
