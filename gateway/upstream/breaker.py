"""Per-upstream circuit breaker: closed → open after failures → half-open probe → closed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gateway import metrics

CLOSED, HALF_OPEN, OPEN = 0, 1, 2


@dataclass
class Breaker:
    name: str
    failure_threshold: int = 5
    reset_after: float = 10.0
    failures: int = 0
    state: int = CLOSED
    opened_at: float = 0.0
    _probe_out: bool = field(default=False, repr=False)

    def allow(self) -> bool:
        """Whether a call may go to this upstream now (one probe at a time when half-open)."""
        if self.state == OPEN and time.monotonic() - self.opened_at >= self.reset_after:
            self._set(HALF_OPEN)
        if self.state == OPEN:
            return False
        if self.state == HALF_OPEN:
            if self._probe_out:
                return False
            self._probe_out = True
        return True

    def is_open(self) -> bool:
        return self.state == OPEN and time.monotonic() - self.opened_at < self.reset_after

    def success(self) -> None:
        self.failures = 0
        self._probe_out = False
        if self.state != CLOSED:
            self._set(CLOSED)

    def failure(self) -> None:
        self.failures += 1
        self._probe_out = False
        if self.state == HALF_OPEN or self.failures >= self.failure_threshold:
            self.opened_at = time.monotonic()
            self._set(OPEN)

    def _set(self, state: int) -> None:
        self.state = state
        metrics.CIRCUIT_STATE.labels(self.name).set(state)
