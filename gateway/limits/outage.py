"""What the limits do while Redis is down: the failure policy of ``server.redis.on_failure``.

Each limit kind (``rpm``, ``tpm``, ``budget``) is ``fail_open`` (the request goes through,
uncounted) or ``fail_closed`` (503 with ``Retry-After``). A key that only the Redis mirror knows
(created on another replica) cannot be checked either: that is always a 503, never a 401 and
never a pass. Budget charges that could not be written are kept in memory (``OwedCharges``) and
added once Redis answers again; tpm charges are not (their minute has passed by then).
"""

from __future__ import annotations

import logging
from typing import Any

from gateway import metrics
from gateway.errors import APIError

log = logging.getLogger("shunter.limits")

_WHAT = {"rpm": "requests-per-minute limit", "tpm": "tokens-per-minute limit", "budget": "budget"}
MAX_OWED = 100_000  # distinct (key, period) counters remembered; more is not a realistic outage


def _opts(rt: Any) -> Any:
    return rt.cfg.server.redis


def unavailable(rt: Any, kind: str) -> None:
    """Redis could not answer ``kind``'s check: return to let the request through, or raise the 503."""
    opts = _opts(rt)
    mode = getattr(opts.on_failure, kind)
    metrics.REDIS_FAILURE_POLICY.labels(kind, mode).inc()
    if mode == "fail_open":
        return
    raise APIError(
        503,
        f"This key's {_WHAT[kind]} cannot be checked while the gateway's shared state (Redis) is unreachable; "
        f"retry in {opts.retry_after}s.",
        code="limits_unavailable",
        headers={"Retry-After": str(opts.retry_after)},
    )


def key_unavailable(rt: Any) -> APIError:
    """The key is not in this node's key file and the Redis mirror cannot be asked."""
    opts = _opts(rt)
    metrics.REDIS_FAILURE_POLICY.labels("key", "fail_closed").inc()
    return APIError(
        503,
        f"The API key cannot be checked while the gateway's shared state (Redis) is unreachable; "
        f"retry in {opts.retry_after}s.",
        code="limits_unavailable",
        headers={"Retry-After": str(opts.retry_after)},
    )


class OwedCharges:
    """Budget charges (USD per counter key) that Redis did not take; paid back when it answers."""

    def __init__(self) -> None:
        self.owed: dict[str, tuple[float, float | None]] = {}

    def add(self, counter: str, usd: float, ttl: float | None) -> None:
        if counter not in self.owed and len(self.owed) >= MAX_OWED:
            log.error("budget charge of $%g for %s lost: too many unpaid counters", usd, counter)
            return
        prev = self.owed.get(counter, (0.0, ttl))[0]
        self.owed[counter] = (prev + usd, ttl)

    async def pay(self, shared: Any) -> None:
        """Add what is owed (raises ``StateUnavailable`` if Redis is still away; the rest stays owed)."""
        for counter in list(self.owed):
            usd, ttl = self.owed[counter]
            await shared.incr(counter, usd, ttl)
            del self.owed[counter]
