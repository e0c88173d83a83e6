"""A direct ASGI dispatch for the two hot endpoints, skipping FastAPI's router.

FastAPI's routing (route matching, the per-route exception wrapper, the exit stack, the
endpoint wrapper) cost about a third of the gateway's CPU per proxied request in profiles. The
chat and completions endpoints need none of it: they take the raw ``Request`` and return a
``Response``. This middleware sits innermost (inside the auth and deadline middlewares) and
calls ``gateway.api.proxy.handle`` directly for ``POST /v1/chat/completions`` and
``POST /v1/completions``; an ``APIError`` becomes its OpenAI error response exactly as the
registered handler would make it, and anything else propagates to the server-error handler as
before. Every other path goes through FastAPI unchanged; the routes stay registered, so the
OpenAPI schema is the same.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from gateway.errors import APIError

ROUTES = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}


class FastPathMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = ROUTES.get(scope.get("path", "")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if kind is None:
            return await self.app(scope, receive, send)
        from gateway.api.proxy import handle

        request = Request(scope, receive, send)
        try:
            response = await handle(request, kind)
        except APIError as exc:
            response = exc.response()
        await response(scope, receive, send)
