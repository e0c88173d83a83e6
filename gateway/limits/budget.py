"""USD budgets per key and period (day, month or total), on shared counters.

Before a request the key's spend for the current period is checked against its budget; after
the request its actual cost (from the price table and the upstream's reported usage) is added.
The check is a read, so concurrent requests can overshoot by at most their own cost.
"""

from __future__ import annotations

import datetime as dt
import time

from gateway.limits.keys import KeySpec
from gateway.state import SharedState

_cache: dict[tuple[str, int], tuple[str, float | None, str]] = {}


def period(spec: KeySpec, now: dt.datetime | None = None) -> tuple[str, float | None, str]:
    """(counter suffix, seconds until the period ends or None, human description).

    Computed once per second per period kind (it is on every budgeted request's path).
    """
    if now is None:
        sec = int(time.time())
        hit = _cache.get((spec.budget_period, sec))
        if hit is None:
            if len(_cache) > 64:
                _cache.clear()
            hit = _cache[(spec.budget_period, sec)] = _period(spec, dt.datetime.fromtimestamp(sec, dt.timezone.utc))
        return hit
    return _period(spec, now)


def _period(spec: KeySpec, now: dt.datetime) -> tuple[str, float | None, str]:
    start = period_start(spec, now)
    if spec.budget_period == "day":
        end = start + dt.timedelta(days=1)
        return now.strftime("%Y-%m-%d"), (end - now).total_seconds() + 3600, "per day (UTC)"
    if spec.budget_period == "month":
        end = (start + dt.timedelta(days=32)).replace(day=1)
        return now.strftime("%Y-%m"), (end - now).total_seconds() + 3600, "per month (UTC)"
    return "total", None, "in total"


def period_start(spec: KeySpec, now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.timezone.utc)
    if spec.budget_period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if spec.budget_period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return dt.datetime.fromtimestamp(0, dt.timezone.utc)


def _key(key_id: str, suffix: str) -> str:
    return f"budget:{key_id}:{suffix}"


async def spent(shared: SharedState, key_id: str, spec: KeySpec) -> float:
    suffix, _, _ = period(spec)
    v = await shared.get(_key(key_id, suffix))
    return float(v) if v else 0.0


def counter(key_id: str, spec: KeySpec) -> tuple[str, float | None]:
    """(shared-state key, TTL) of the key's spend counter for the current period."""
    suffix, ttl, _ = period(spec)
    return _key(key_id, suffix), ttl


async def charge(shared: SharedState, key_id: str, spec: KeySpec, usd: float) -> float:
    key, ttl = counter(key_id, spec)
    return await shared.incr(key, usd, ttl)


def usd(x: float) -> str:
    """A dollar amount with the decimals it needs: $20.00, $0.001, $0.00125 (not $0.00)."""
    if x == 0 or (abs(x) >= 0.01 and round(x, 2) == round(x, 6)):
        return f"${x:,.2f}"
    text = f"{x:,.6f}".rstrip("0")
    return "$" + (text if len(text.split(".")[1]) >= 2 else f"{x:,.2f}")


async def seed(shared: SharedState, key_id: str, spec: KeySpec, usd: float) -> None:
    """Start this period's counter from what the outcome store says was spent (once per process)."""
    suffix, ttl, _ = period(spec)
    if usd > 0:
        await shared.check_and_incr(_key(key_id, suffix), usd, -1.0, ttl)
