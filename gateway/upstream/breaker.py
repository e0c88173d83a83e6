"""Per-upstream circuit breaker, retry budget and 429 cooldown.

States (``shunter_circuit_state``): 0 closed, 1 half-open, 2 open.

- **Opens** after ``consecutive_failures`` failures in a row, or when at least ``min_calls``
  calls in the last ``window`` seconds failed at a rate of ``error_rate`` or more; also for the
  ``Retry-After`` of an upstream 429 (a cooldown).
- **Half-open** after ``open_for`` seconds (or the cooldown): one probe call goes through;
  success closes the circuit, failure opens it again. The state (and its gauge) turns half-open
  when the time is up, not at the next call: a timer on the event loop moves it.
- **Shared:** with Redis configured, an opening is published as ``breaker:<upstream>`` (the wall
  clock time it reopens, with a TTL), and every replica applies it (``sync_from``), so all
  replicas skip a failing upstream together. Each replica sends its own half-open probe.
- **Retry budget** (Envoy's idea): retries against this upstream may be at most ``ratio`` of the
  first attempts in the last ``window`` seconds (plus ``min_retries``), so retries cannot
  multiply the load on an upstream that is already failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway import metrics

CLOSED, HALF_OPEN, OPEN = 0, 1, 2
log = logging.getLogger("shunter.breaker")


class BreakerConfig(BaseModel):
    """Circuit breaker per upstream: opens on consecutive failures or an error rate over a window."""

    model_config = ConfigDict(extra="forbid")
    consecutive_failures: int = Field(5, ge=1, description="Open after this many failures in a row.")
    error_rate: float = Field(0.5, gt=0, le=1, description="Open when this share of calls in the window failed...")
    min_calls: int = Field(20, ge=1, description="...and the window holds at least this many calls.")
    window: float = Field(10.0, gt=0, description="Seconds of history the error rate is computed over.")
    open_for: float = Field(10.0, gt=0, description="Seconds an open circuit waits before one half-open probe.")


class RetryBudgetConfig(BaseModel):
    """Envoy-style retry budget per upstream: retries may be at most ``ratio`` of recent calls."""

    model_config = ConfigDict(extra="forbid")
    ratio: float = Field(0.2, ge=0, le=1, description="Retries allowed as a share of first attempts in the window.")
    min_retries: int = Field(3, ge=0, description="Retries always allowed in a window, so low traffic can retry.")
    window: float = Field(10.0, gt=0, description="Seconds of history the budget counts.")


class Breaker:
    def __init__(self, name: str, cfg: BreakerConfig | None = None, budget: RetryBudgetConfig | None = None) -> None:
        self.name = name
        self.cfg = cfg or BreakerConfig()
        self.budget = budget or RetryBudgetConfig()
        self.state = CLOSED
        self.failures = 0  # consecutive
        self.until = 0.0  # monotonic time an open circuit may be probed
        self.shared: Any = None  # SharedState, attached when Redis is configured
        self._calls: deque[tuple[float, bool]] = deque()
        self._bad = 0  # failures in _calls
        self._firsts: deque[float] = deque()
        self._retries: deque[float] = deque()
        self._probe_out = False
        self._remote = False  # opened because another replica said so
        self._tasks: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        metrics.CIRCUIT_STATE.labels(name).set(CLOSED)

    # -- routing ---------------------------------------------------------------------------
    def allow(self) -> bool:
        """Whether a call may go to this upstream now (one probe at a time when half-open)."""
        if self.state == OPEN and time.monotonic() >= self.until:
            self._set(HALF_OPEN)
        if self.state == OPEN:
            return False
        if self.state == HALF_OPEN:
            if self._probe_out:
                return False
            self._probe_out = True
        return True

    def is_open(self) -> bool:
        """Open and not yet due for a probe (routing skips the upstream)."""
        return self.state == OPEN and time.monotonic() < self.until

    # -- results ---------------------------------------------------------------------------
    def success(self) -> None:
        self.failures = 0
        self._record(True)
        self._probe_out = False
        if self.state != CLOSED:
            self._set(CLOSED)
            self._publish(None)

    def failure(self) -> None:
        self.failures += 1
        self._probe_out = False
        n, bad = self._record(False)
        tripped = self.failures >= self.cfg.consecutive_failures or (
            n >= self.cfg.min_calls and bad / n >= self.cfg.error_rate
        )
        if self.state == HALF_OPEN or (self.state == CLOSED and tripped):
            self._open(self.cfg.open_for)

    def cool_down(self, seconds: float) -> None:
        """The upstream asked us to back off (429 ``Retry-After``): skip it for ``seconds``."""
        if seconds <= 0:
            return
        if self.state != OPEN or time.monotonic() + seconds > self.until:
            self._open(seconds)

    def _record(self, ok: bool) -> tuple[int, int]:
        now = time.monotonic()
        self._calls.append((now, ok))
        self._bad += not ok  # a running count: summing the window per call is O(n) on the hot path
        edge = now - self.cfg.window
        while self._calls and self._calls[0][0] < edge:
            self._bad -= not self._calls.popleft()[1]
        return len(self._calls), self._bad

    def _open(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds
        self._remote = False
        self._probe_out = False
        if self.state != OPEN:
            log.warning("circuit for upstream %s opened for %.1fs", self.name, seconds)
        self._set(OPEN)
        self._publish(seconds)

    def _set(self, state: int) -> None:
        self.state = state
        metrics.CIRCUIT_STATE.labels(self.name).set(state)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if state == OPEN:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (offline use): allow() moves the state instead
                return
            self._timer = loop.call_at(loop.time() + max(0.0, self.until - time.monotonic()), self._due)

    def _due(self) -> None:
        """The open time is over: half-open now (the gauge too), whether or not a call comes."""
        self._timer = None
        if self.state == OPEN and time.monotonic() >= self.until:
            self._set(HALF_OPEN)
        elif self.state == OPEN:  # reopened for longer meanwhile
            self._set(OPEN)

    # -- retry budget ----------------------------------------------------------------------
    def note_request(self) -> None:
        """A first attempt for a request went to this upstream."""
        now = time.monotonic()
        self._firsts.append(now)
        edge = now - self.budget.window  # prune here too, or the deque grows with every request
        while self._firsts[0] < edge:
            self._firsts.popleft()

    def allow_retry(self) -> bool:
        """Take one retry from the budget if there is one left in the window."""
        now = time.monotonic()
        edge = now - self.budget.window
        for q in (self._firsts, self._retries):
            while q and q[0] < edge:
                q.popleft()
        if len(self._retries) + 1 > max(self.budget.min_retries, self.budget.ratio * len(self._firsts)):
            metrics.RATE_LIMITED.labels("retry_budget").inc()
            return False
        self._retries.append(now)
        return True

    # -- shared state ----------------------------------------------------------------------
    def _publish(self, seconds: float | None) -> None:
        if self.shared is None:
            return
        key = f"breaker:{self.name}"
        coro = (
            self.shared.delete(key)
            if seconds is None
            else self.shared.set(key, repr(time.time() + seconds), ttl=seconds)
        )
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop (offline use)
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sync_from(self, shared: Any) -> None:
        """Apply an opening published by another replica (or its end)."""
        v = await shared.get(f"breaker:{self.name}")
        left = float(v) - time.time() if v else 0.0
        if left > 0 and (self.state == CLOSED or (self.state == OPEN and time.monotonic() + left > self.until + 0.5)):
            self.until = time.monotonic() + left
            self._remote = True
            self._set(OPEN)
        elif left <= 0 and self.state == OPEN and self._remote:
            self._set(CLOSED)
            self.failures = 0


async def sync_loop(runtimes: Any, shared: Any, every: float = 0.5) -> None:
    """Keep every upstream's breaker in step with the shared state (Redis) of all replicas.

    ``runtimes`` is the services' runtime holder (its ``current`` changes on reload); the task is
    cancelled by ``Services.close``.
    """
    while True:
        for c in list(runtimes.current.clients.values()):
            c.breaker.shared = shared
            try:
                await c.breaker.sync_from(shared)
            except Exception:  # Redis away: breakers keep working locally
                log.debug("breaker sync failed", exc_info=True)
        await asyncio.sleep(every)
