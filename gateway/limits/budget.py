"""USD budgets per key and period (day, month or total), on shared counters.

Before a request the key's spend for the current period is checked against its budget; after
the request its actual cost (from the price table and the upstream's reported usage) is added.
The check is a read, so concurrent requests can overshoot by at most their own cost.
"""

from __future__ import annotations

import datetime as dt
import functools
import time

from gateway.limits.keys import KeySpec
from gateway.state import SharedState


def period(spec: KeySpec, now: dt.datetime | None = None) -> tuple[str, float | None, str]:
    """(counter suffix, seconds until the period ends or None, human description).

    Computed once per second per period kind (it is on every budgeted request's path).
    """
    if now is None:
        return _period_at(spec.budget_period, int(time.time()))
    return _period(spec.budget_period, now)


@functools.lru_cache(maxsize=64)
def _period_at(kind: str, sec: int) -> tuple[str, float | None, str]:
    """``_period`` at a whole second (a pure function, memoised: one computation per second)."""
    return _period(kind, dt.datetime.fromtimestamp(sec, dt.timezone.utc))


def _period(kind: str, now: dt.datetime) -> tuple[str, float | None, str]:
    start = _start(kind, now)
    if kind == "day":
        end = start + dt.timedelta(days=1)
        return now.strftime("%Y-%m-%d"), (end - now).total_seconds() + 3600, "per day (UTC)"
    if kind == "month":
        end = (start + dt.timedelta(days=32)).replace(day=1)
        return now.strftime("%Y-%m"), (end - now).total_seconds() + 3600, "per month (UTC)"
    return "total", None, "in total"


def period_start(spec: KeySpec, now: dt.datetime | None = None) -> dt.datetime:
    return _start(spec.budget_period, now or dt.datetime.now(dt.timezone.utc))


def _start(kind: str, now: dt.datetime) -> dt.datetime:
    if kind == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "month":
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
