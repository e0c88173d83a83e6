"""One pooled ``httpx.AsyncClient`` per upstream, with its concurrency limit and credentials."""

from __future__ import annotations

import asyncio

import httpx

from gateway.policy.schema import Upstream
from gateway.upstream.breaker import Breaker


class UpstreamClient:
    def __init__(self, name: str, cfg: Upstream, base_url: str | None = None) -> None:
        self.name = name
        self.cfg = cfg
        self.base_url = (base_url or cfg.base_url or "").rstrip("/")
        t = cfg.timeouts
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(connect=t.connect, read=t.idle, write=t.connect, pool=t.first_byte),
            limits=httpx.Limits(max_connections=cfg.max_concurrency, max_keepalive_connections=cfg.max_concurrency),
        )
        self.slots = asyncio.Semaphore(cfg.max_concurrency)
        self.breaker = Breaker(name, cfg.breaker, cfg.retry.budget)

    @property
    def model_id(self) -> str:
        return self.cfg.model or self.name

    def headers(self) -> dict[str, str]:
        h = dict(self.cfg.headers)
        key = self.cfg.resolve_key()
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def available(self) -> tuple[bool, str]:
        ok, why = self.cfg.available()
        if not ok:
            return ok, why
        if not self.base_url:
            return False, "not started"
        if self.breaker.is_open():
            return False, "circuit open"
        return True, ""

    async def aclose(self) -> None:
        await self.http.aclose()
