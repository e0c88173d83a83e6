"""Shared state: one small interface, an in-process and a Redis implementation.

Everything that must agree across replicas (rate-limit and budget counters, circuit-breaker
state, session stickiness, bandit statistics, response cache) goes through ``SharedState``.
The embedded default uses ``InProcessState``; setting ``redis_url`` switches to ``RedisState``.

When Redis cannot be reached (``server.redis``; docs/security.md, "When Redis is down"):

- every command has a short timeout (``socket_timeout``, ``connect_timeout``), so a frozen Redis
  costs a request at most about half a second, not the client library's retries;
- after a failure Redis counts as *down* for ``down_for`` seconds: commands raise
  ``StateUnavailable`` at once, then a single command probes it again (the others keep failing
  fast until the probe succeeds);
- a pooled connection that went stale while Redis restarted is replaced and the command retried
  once; idle pooled connections are checked (PING) every ``health_check_interval`` seconds.

``make_state`` returns a ``FailSoft`` wrapper: the response cache, stickiness, the bandit and
the breaker sync treat an unreachable Redis as empty and carry on. The limits use the raw state
(``FailSoft.strict``) and apply the configured failure policy (``gateway.limits.outage``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from gateway import metrics

log = logging.getLogger("shunter.state")
T = TypeVar("T")


FailureMode = Literal["fail_open", "fail_closed"]


class RedisFailure(BaseModel):
    """What a limit does while Redis cannot be reached (``fail_open``: let the request through
    uncounted; ``fail_closed``: answer 503 with ``Retry-After``)."""

    model_config = ConfigDict(extra="forbid")
    rpm: FailureMode = Field("fail_open", description="Requests-per-minute limits.")
    tpm: FailureMode = Field("fail_open", description="Tokens-per-minute limits.")
    budget: FailureMode = Field("fail_closed", description="USD budgets (spend cannot be checked).")


class RedisOptions(BaseModel):
    """How the gateway talks to Redis (``server.redis_url``) and what it does while Redis is away."""

    model_config = ConfigDict(extra="forbid")
    socket_timeout: float = Field(0.5, gt=0, description="Seconds a Redis command may take before it counts as failed.")
    connect_timeout: float = Field(0.5, gt=0, description="Seconds to open a connection to Redis.")
    health_check_interval: float = Field(
        5.0, ge=0, description="A pooled connection idle this long is checked (PING) before use; 0: never."
    )
    down_for: float = Field(
        1.0,
        gt=0,
        description="After a failure, Redis counts as down for this long: calls fail at once, then one probe.",
    )
    retry_after: int = Field(2, ge=1, description="Retry-After seconds on a 503 while Redis is down.")
    on_failure: RedisFailure = Field(default_factory=RedisFailure)
    spill_path: str | None = Field(
        None,
        description="Local SQLite file that keeps outcome records while Redis is down, replayed when it returns; "
        "default: <server.outcomes_path>-spill.sqlite beside the outcome file.",
    )
    replay_every: float = Field(1.0, gt=0, description="Seconds between two attempts to replay spilled records.")


class StateUnavailable(Exception):
    """The shared state (Redis) cannot be reached now."""


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

    def __init__(self, url: str, prefix: str = "shunter:", options: RedisOptions | None = None) -> None:
        import redis.asyncio as aioredis

        self.opts = options or RedisOptions()
        self.redis = aioredis.from_url(url, decode_responses=True, **client_options(self.opts))
        self.prefix = prefix
        self._check_and_incr = self.redis.register_script(_CHECK_AND_INCR)
        self._down_until = 0.0  # monotonic; 0: up
        self._probing = False
        metrics.SHARED_STATE_UP.set(1)

    def _k(self, key: str) -> str:
        return self.prefix + key

    @property
    def up(self) -> bool:
        return self._down_until == 0.0

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run one command under the outage rules in the module docstring."""
        probe = self._down_until > 0.0
        if probe and (self._probing or time.monotonic() < self._down_until):
            raise StateUnavailable("Redis is down")
        if probe:
            self._probing = True
        try:
            async with _timeout(self.opts.socket_timeout + self.opts.connect_timeout):
                result = await op()
        except _FAILURES as exc:
            self._mark_down(exc)
            raise StateUnavailable(f"Redis unreachable: {type(exc).__name__}") from exc
        finally:
            if probe:
                self._probing = False
        if probe:
            self._down_until = 0.0
            metrics.SHARED_STATE_UP.set(1)
            log.warning("Redis is reachable again")
        return result

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_until == 0.0:
            log.error("Redis unreachable (%s: %s); limits apply server.redis.on_failure", type(exc).__name__, exc)
        self._down_until = time.monotonic() + self.opts.down_for
        metrics.SHARED_STATE_UP.set(0)
        metrics.SHARED_STATE_ERRORS.inc()

    async def get(self, key: str) -> str | None:
        value = await self._call(lambda: self.redis.get(self._k(key)))
        return None if value is None else str(value)  # str already (decode_responses); typed bytes | str

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        await self._call(lambda: self.redis.set(self._k(key), value, px=int(ttl * 1000) if ttl else None))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self.redis.delete(self._k(key)))

    async def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        return (await self.check_and_incr(key, amount, -1.0, ttl))[1]

    async def check_and_incr(
        self, key: str, amount: float, limit: float, ttl: float | None = None
    ) -> tuple[bool, float, float]:
        ok, value, pttl = await self._call(
            lambda: self._check_and_incr(keys=[self._k(key)], args=[amount, limit, int(ttl * 1000) if ttl else 0])
        )
        return bool(int(ok)), float(value), (int(pttl) / 1000.0 if int(pttl) >= 0 else -1.0)

    async def hincr(self, key: str, field: str, amount: float = 1.0) -> float:
        return float(await self._call(lambda: self.redis.hincrbyfloat(self._k(key), field, amount)))

    async def hgetall(self, key: str) -> dict[str, str]:
        raw = await self._call(lambda: self.redis.hgetall(self._k(key)))
        return {str(k): str(v) for k, v in raw.items()}  # str already (decode_responses)

    async def close(self) -> None:
        await self.redis.aclose()


class FailSoft:
    """``SharedState`` for callers that can do without Redis for a while: an outage reads as
    empty (``get`` None, ``hgetall`` {}), writes are skipped, counters answer as if new.

    ``strict`` is the wrapped state, for the callers that must know (the limits).
    """

    def __init__(self, strict: RedisState) -> None:
        self.strict = strict

    async def _soft(self, op: Awaitable[T], default: T) -> T:
        try:
            return await op
        except StateUnavailable:
            metrics.SHARED_STATE_DEGRADED.inc()
            return default

    async def get(self, key: str) -> str | None:
        return await self._soft(self.strict.get(key), None)

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        await self._soft(self.strict.set(key, value, ttl), None)

    async def delete(self, key: str) -> None:
        await self._soft(self.strict.delete(key), None)

    async def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        return await self._soft(self.strict.incr(key, amount, ttl), amount)

    async def check_and_incr(
        self, key: str, amount: float, limit: float, ttl: float | None = None
    ) -> tuple[bool, float, float]:
        return await self._soft(self.strict.check_and_incr(key, amount, limit, ttl), (True, amount, -1.0))

    async def hincr(self, key: str, field: str, amount: float = 1.0) -> float:
        return await self._soft(self.strict.hincr(key, field, amount), amount)

    async def hgetall(self, key: str) -> dict[str, str]:
        return await self._soft(self.strict.hgetall(key), {})

    async def close(self) -> None:
        await self.strict.close()


def client_options(opts: RedisOptions, for_asyncio: bool = True) -> dict[str, Any]:
    """redis-py connection options for ``server.redis`` (the asyncio or the blocking client)."""
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    if for_asyncio:
        from redis.asyncio.retry import Retry
    else:
        from redis.retry import Retry  # type: ignore[assignment]

    return {
        "socket_timeout": opts.socket_timeout,
        "socket_connect_timeout": opts.connect_timeout,
        "health_check_interval": opts.health_check_interval,
        # one retry, on a fresh connection, when a pooled one turns out dead (Redis restarted);
        # never on a timeout: a frozen Redis must fail fast
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        "retry_on_error": [RedisConnectionError],
        "retry_on_timeout": False,
    }


def _failures() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


def _timeout(seconds: float) -> Any:
    if hasattr(asyncio, "timeout"):
        return asyncio.timeout(seconds)
    from async_timeout import timeout  # pragma: no cover - Python 3.10

    return timeout(seconds)


try:
    _FAILURES = _failures()
except ImportError:  # pragma: no cover - redis is a core dependency
    _FAILURES = (OSError, asyncio.TimeoutError)


def make_state(redis_url: str | None, options: RedisOptions | None = None) -> SharedState:
    """In-process state, or Redis (wrapped in ``FailSoft``) when a URL is given."""
    return FailSoft(RedisState(redis_url, options=options)) if redis_url else InProcessState()


def strict(shared: Any) -> Any:
    """The state that raises ``StateUnavailable`` (what the limits use)."""
    return getattr(shared, "strict", shared)
