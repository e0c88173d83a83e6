"""One pooled ``aiohttp.ClientSession`` per upstream, with its concurrency limit and credentials.

Why aiohttp and not httpx: under concurrency httpx/httpcore's connection pool is the gateway's
bottleneck (measured against the fake upstream at 16 concurrent requests on 2 cores: httpx
~450 requests/s with p99 ~160 ms, aiohttp ~4,500 requests/s with p99 ~9 ms; see
docs/performance.md). The session is created lazily, inside the running event loop.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import sys

import aiohttp
from aiohttp.helpers import BasicAuth, get_env_proxy_for_url
from yarl import URL

from gateway.upstream.breaker import Breaker
from gateway.upstream.config import Upstream

if sys.version_info >= (3, 11):
    from asyncio import timeout as deadline
else:  # pragma: no cover - aiohttp depends on async-timeout below 3.11
    from async_timeout import timeout as deadline

ANTHROPIC_VERSION = "2023-06-01"
TransportError = (aiohttp.ClientError, ConnectionError)
"""Exceptions meaning the connection to the upstream failed (not a timeout)."""


@functools.lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """Verify upstream certificates against certifi's bundle when present (as httpx did), else the system's."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover
        return ssl.create_default_context()


def env_proxy(base_url: str) -> tuple[URL | None, BasicAuth | None]:
    """The HTTP(S)_PROXY / NO_PROXY proxy for an upstream, read once (httpx's default behaviour)."""
    try:
        return get_env_proxy_for_url(URL(base_url)) if base_url else (None, None)
    except (LookupError, ValueError):
        return None, None


class UpstreamResponse:
    """An open upstream response: status, headers, and its body read whole or chunk by chunk."""

    __slots__ = ("_idle", "_resp")

    def __init__(self, resp: aiohttp.ClientResponse, idle: float) -> None:
        self._resp = resp
        self._idle = idle

    @property
    def status_code(self) -> int:
        return self._resp.status

    @property
    def headers(self):
        return self._resp.headers

    async def aread(self) -> bytes:
        async with deadline(self._idle):
            return await self._resp.read()

    async def next_chunk(self, wait: float | None = None) -> bytes:
        """The next bytes the upstream sent (``b""`` at the end); waits ``wait`` or ``idle`` seconds."""
        async with deadline(wait or self._idle):
            return await self._resp.content.readany()

    async def aclose(self) -> None:
        """Give the connection back to the pool when the body was read whole, else drop it."""
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


class UpstreamClient:
    def __init__(self, name: str, cfg: Upstream, base_url: str | None = None) -> None:
        self.name = name
        self.cfg = cfg
        self.base_url = (base_url or cfg.base_url or "").rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self.proxy, self.proxy_auth = env_proxy(self.base_url)
        self.slots = asyncio.Semaphore(cfg.max_concurrency)
        self.breaker = Breaker(name, cfg.breaker, cfg.retry.budget)

    @property
    def session(self) -> aiohttp.ClientSession:
        s = self._session
        if s is None or s.closed:
            s = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.cfg.max_concurrency, ttl_dns_cache=300, ssl=tls_context()),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.cfg.timeouts.connect),
            )
        return s

    def url(self, path: str) -> URL:
        u = self._urls.get(path)
        if u is None:
            u = self._urls[path] = URL(self.base_url + path)
        return u

    @property
    def model_id(self) -> str:
        return self.cfg.model or self.name

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", **self.cfg.headers}
        key = self.cfg.resolve_key()
        if self.cfg.kind == "anthropic":
            h.setdefault("anthropic-version", ANTHROPIC_VERSION)
            if key:
                h["x-api-key"] = key
        elif key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def speaks(self, dialect: str) -> bool:
        """Whether a request in ``dialect`` (chat, completions, responses, embeddings, anthropic) goes here as is."""
        if self.cfg.kind == "anthropic":
            return dialect == "anthropic"
        if dialect in ("chat", "completions"):
            return True
        return dialect in ("responses", "embeddings") and dialect in self.cfg.capabilities

    def available(self) -> tuple[bool, str]:
        ok, why = self.cfg.available()
        if not ok:
            return ok, why
        if not self.base_url:
            return False, "local model server not running (see the gateway log)" if self.cfg.launch else "not started"
        if self.breaker.is_open():
            return False, "circuit open"
        return True, ""

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
