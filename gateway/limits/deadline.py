"""A deadline for every ``/v1`` request (``server.request_timeout``), body upload and stream included.

A slow or stuck client cannot hold an upstream connection forever: when the deadline passes,
the request task is cancelled, which closes the upstream response (the relay's ``finally``)
and frees its concurrency slot. Before the response started the client gets a 504; during an
SSE stream it gets a final OpenAI-style error event (if it is still reading). A client that
disconnects mid-stream is handled by Starlette: the stream is cancelled at once, same path.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from gateway.errors import APIError
from gateway.upstream.sse import error_event

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # pragma: no cover - aiohttp brings async-timeout below 3.11
    from async_timeout import timeout


class DeadlineMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        svc = scope["app"].state.services if scope["type"] == "http" else None
        if svc is None or not path.startswith("/v1/"):
            return await self.app(scope, receive, send)
        seconds = svc.runtime.cfg.server.request_timeout
        started: dict[str, Any] = {"start": False, "sse": False, "done": False}

        async def tracked(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                started["start"] = True
                ctype = dict(msg.get("headers") or []).get(b"content-type", b"")
                started["sse"] = ctype.startswith(b"text/event-stream")
            elif msg["type"] == "http.response.body" and not msg.get("more_body"):
                started["done"] = True
            await send(msg)

        deadline = timeout(seconds)
        try:
            async with deadline:
                await self.app(scope, receive, tracked)
        except asyncio.TimeoutError:
            if not deadline.expired():  # another timeout (an upstream's): not ours to report
                raise
            msg = f"The request took longer than the gateway's request timeout of {seconds:g}s."
            if not started["start"]:
                err = APIError(504, msg, code="request_timeout")
                return await err.response()(scope, receive, send)
            if started["sse"] and not started["done"]:
                try:  # the client may be the reason we are here: don't wait on it for long
                    async with timeout(1.0):
                        await send(
                            {
                                "type": "http.response.body",
                                "body": error_event(msg, code="request_timeout"),
                                "more_body": False,
                            }
                        )
                except (asyncio.TimeoutError, OSError):
                    pass
