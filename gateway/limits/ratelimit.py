"""Requests-per-minute and tokens-per-minute limits on shared counters (one-minute windows).

Each limit is one counter per key per minute, raised with ``SharedState.check_and_incr``: a Lua
script in Redis (every replica sees the same count), a lock-guarded dict in process otherwise.
A refused increment leaves the counter untouched, so refused requests do not eat the quota.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from gateway.state import SharedState

WINDOW = 60.0


@dataclass
class Verdict:
    allowed: bool
    used: float
    retry_after: int  # seconds until the window resets


def _window(now: float) -> tuple[int, int]:
    w = int(now // WINDOW)
    return w, max(1, math.ceil((w + 1) * WINDOW - now))


async def take(shared: SharedState, key_id: str, kind: str, amount: float, limit: int) -> Verdict:
    """Add ``amount`` to this minute's ``kind`` counter unless that would pass ``limit``."""
    w, left = _window(time.time())
    ok, used, _ = await shared.check_and_incr(f"rl:{kind}:{key_id}:{w}", float(amount), float(limit), WINDOW + 5)
    return Verdict(ok, used, left)


async def add(shared: SharedState, key_id: str, kind: str, amount: float) -> None:
    """Count usage known only afterwards (completion tokens) against this minute's window."""
    if amount > 0:
        w, _ = _window(time.time())
        await shared.incr(f"rl:{kind}:{key_id}:{w}", float(amount), WINDOW + 5)
