"""Shared state: one small interface, an in-process and a Redis implementation.

Everything that must agree across replicas (rate-limit and budget counters, circuit-breaker
state, session stickiness, bandit statistics, response cache) goes through ``SharedState``.
The embedded default uses ``InProcessState``; setting ``redis_url`` switches to ``RedisState``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

# Atomic "add if the result stays within the limit", with the window's expiry set on creation.
_CHECK_AND_INCR = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit >= 0 and cur + amount > limit then
  return {0, tostring(cur), redis.call('PTTL', KEYS[1])}
end
local new = redis.call('INCRBYFLOAT', KEYS[1], amount)
if tonumber(ARGV[3]) > 0 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, tostring(new), redis.call('PTTL', KEYS[1])}
"""


class SharedState(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, ttl: float | None = None) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float: ...
    async def check_and_incr(
        self, key: str, amount: float, limit: float, ttl: float | None = None
    ) -> tuple[bool, float, float]:
        """Add ``amount`` unless that would exceed ``limit`` (``limit < 0``: no limit).

        Returns (allowed, value after the call, seconds until the key expires or -1).
        """
        ...

    async def hincr(self, key: str, field: str, amount: float = 1.0) -> float: ...
    async def hgetall(self, key: str) -> dict[str, str]: ...
    async def close(self) -> None: ...


class InProcessState:
    """Single-process state with TTLs; safe under one event loop."""

    def __init__(self) -> None:
        self._kv: dict[str, tuple[str, float | None]] = {}
        self._h: dict[str, dict[str, float]] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> tuple[str, float | None] | None:
        item = self._kv.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= time.monotonic():
            del self._kv[key]
            return None
        return item

    def _ttl_left(self, key: str) -> float:
        item = self._live(key)
        if item is None or item[1] is None:
            return -1.0
        return max(0.0, item[1] - time.monotonic())

    async def get(self, key: str) -> str | None:
        item = self._live(key)
        return None if item is None else item[0]

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._kv[key] = (value, time.monotonic() + ttl if ttl else None)

    async def delete(self, key: str) -> None:
        self._kv.pop(key, None)
        self._h.pop(key, None)

    async def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        allowed, value, _ = await self.check_and_incr(key, amount, -1.0, ttl)
        return value

    async def check_and_incr(
        self, key: str, amount: float, limit: float, ttl: float | None = None
    ) -> tuple[bool, float, float]:
        async with self._lock:
            item = self._live(key)
            cur = float(item[0]) if item else 0.0
            expires = item[1] if item else None
            if limit >= 0 and cur + amount > limit:
                return False, cur, self._ttl_left(key)
            if expires is None and ttl:
                expires = time.monotonic() + ttl
            self._kv[key] = (repr(cur + amount), expires)
            return True, cur + amount, self._ttl_left(key)

    async def hincr(self, key: str, field: str, amount: float = 1.0) -> float:
        h = self._h.setdefault(key, {})
        h[field] = h.get(field, 0.0) + amount
        return h[field]

    async def hgetall(self, key: str) -> dict[str, str]:
        return {k: repr(v) for k, v in self._h.get(key, {}).items()}

    async def close(self) -> None:
        return None


class RedisState:
    """Redis-backed state shared by every replica pointing at the same server."""

    def __init__(self, url: str, prefix: str = "shunter:") -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.from_url(url, decode_responses=True)
        self.prefix = prefix
        self._check_and_incr = self.redis.register_script(_CHECK_AND_INCR)

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def get(self, key: str) -> str | None:
        return await self.redis.get(self._k(key))

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        await self.redis.set(self._k(key), value, px=int(ttl * 1000) if ttl else None)

    async def delete(self, key: str) -> None:
        await self.redis.delete(self._k(key))

    async def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        return (await self.check_and_incr(key, amount, -1.0, ttl))[1]

    async def check_and_incr(
        self, key: str, amount: float, limit: float, ttl: float | None = None
    ) -> tuple[bool, float, float]:
        ok, value, pttl = await self._check_and_incr(
            keys=[self._k(key)], args=[amount, limit, int(ttl * 1000) if ttl else 0]
        )
        return bool(int(ok)), float(value), (int(pttl) / 1000.0 if int(pttl) >= 0 else -1.0)

    async def hincr(self, key: str, field: str, amount: float = 1.0) -> float:
        return float(await self.redis.hincrbyfloat(self._k(key), field, amount))

    async def hgetall(self, key: str) -> dict[str, str]:
        return await self.redis.hgetall(self._k(key))

    async def close(self) -> None:
        await self.redis.aclose()


def make_state(redis_url: str | None) -> SharedState:
    return RedisState(redis_url) if redis_url else InProcessState()
