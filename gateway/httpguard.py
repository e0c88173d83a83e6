"""uvicorn's HTTP protocol with what it lacks against slow clients: a header-read timeout and a
connection cap (``shunter serve`` uses it; docs/security.md, "Slow clients").

uvicorn closes an idle kept-alive connection after ``timeout_keep_alive``, but a connection that
has not finished sending its request headers has no timer at all: a client sending one byte a
second, or nothing, holds a connection and a file descriptor for as long as it likes. Here:

- ``SHUNTER_HEADER_TIMEOUT`` (seconds): from a connection's opening, or from the first byte of
  the next request on a kept-alive connection, until that request's headers are complete. Past
  it the gateway answers ``408`` and closes the connection.
- ``SHUNTER_MAX_CONNECTIONS`` (per worker process): one connection more is answered ``503`` with
  ``Retry-After: 1`` and closed at once, so idle or partial connections cannot exhaust the file
  descriptors.
- ``SHUNTER_KEEP_ALIVE_TIMEOUT``: uvicorn's own idle keep-alive timeout.

A request whose headers are complete but whose body is slow is bounded by
``server.request_timeout`` (``gateway.limits.deadline``). The protocol is named to uvicorn by its
import path (``gateway.serve`` passes it), so worker processes load it too; it reads the settings
the app factory carries.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.settings import Settings

_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_503 = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n"


def limits(config: Any) -> tuple[float, int]:
    """(header timeout, connection cap): the settings the app factory carries (``gateway.serve``)."""
    s = getattr(getattr(config, "app", None), "settings", None)
    if not isinstance(s, Settings):
        s = Settings()
    return s.header_timeout, s.max_connections


class SlowClientGuard:
    """Mixin over a uvicorn HTTP protocol class (``cycle``, ``connections``, ``transport``, ``loop``)."""

    cycle: Any
    config: Any
    connections: set
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._header_timer: asyncio.TimerHandle | None = None
        self._armed_for: Any = None
        self._header_timeout, cap = limits(self.config)
        if len(self.connections) > cap:
            transport.write(_503)
            transport.close()
            return
        self._arm(self._header_timeout)

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if self._header_timer is None and (before is None or before.response_complete):
            self._arm(self._header_timeout)  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before:  # a new request's headers are complete
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self, timeout: float) -> None:
        self._disarm()
        self._armed_for = self.cycle
        self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is self._armed_for and not self.transport.is_closing():
            self.transport.write(_408)
            self.transport.close()


def _protocols() -> dict[str, type]:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    out: dict[str, type] = {"h11": type("GuardedH11Protocol", (SlowClientGuard, H11Protocol), {})}
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return out
    out["httptools"] = type("GuardedHttpToolsProtocol", (SlowClientGuard, HttpToolsProtocol), {})
    return out


_CLASSES = _protocols()
GuardedH11Protocol = _CLASSES["h11"]
GuardedHttpToolsProtocol = _CLASSES.get("httptools", GuardedH11Protocol)


def protocol_path() -> str:
    """The import path uvicorn loads (httptools when installed, as uvicorn's ``auto`` would)."""
    return "gateway.httpguard:GuardedHttpToolsProtocol"
