"""Outcome records survive a Redis outage: a local SQLite spill file, replayed when Redis returns.

``SpillingStore`` wraps the Redis stream store. A batch Redis does not take goes to the spill file
(``shunter_outcomes_spilled_total``); after a failure Redis is not tried again for ``down_for``
seconds, so a frozen Redis costs one timeout per outage, not one per batch. The recorder calls
``replay`` every ``replay_every`` seconds: the oldest spilled records are written to Redis and
then deleted from the file (``shunter_outcomes_replayed_total``). Delivery is at least once: a
crash between the write and the delete replays a record twice, and the trainer's store keeps
one row per request id. A record neither Redis nor the file took is counted in
``shunter_outcomes_dropped_total`` by the recorder. Records left in the file at shutdown are
replayed by the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from gateway import metrics
from gateway.outcomes.record import Feedback, Outcome, Spend
from gateway.outcomes.sqlite import _COLUMNS, SQLiteStore, from_row

log = logging.getLogger("shunter.outcomes")


def spill_path(server: Any) -> Path:
    """``server.redis.spill_path``, else ``<outcomes_path stem>-spill.sqlite`` beside the outcome file."""
    if server.redis.spill_path:
        return Path(server.redis.spill_path)
    p = Path(server.outcomes_path)
    return p.with_name(p.stem + "-spill.sqlite")


class SpillingStore:
    """The primary (Redis) store, with ``spill`` (SQLite) taking what the primary cannot."""

    def __init__(self, primary: Any, path: str | Path, down_for: float = 1.0, replay_every: float = 1.0) -> None:
        self.primary = primary
        self.name = primary.name
        self.spill = SQLiteStore(path)
        self.down_for = down_for
        self.replay_every = replay_every
        self._down_until = 0.0
        self._replay_lock = threading.Lock()
        metrics.OUTCOMES_SPILLED.inc(0)
        metrics.OUTCOMES_REPLAYED.inc(0)

    def _primary_ok(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, what: str, exc: BaseException) -> None:
        if self._primary_ok():
            log.error(
                "outcome store unreachable while %s (%s: %s); spilling to %s",
                what,
                type(exc).__name__,
                exc,
                self.spill.path,
            )
        self._down_until = time.monotonic() + self.down_for

    def write_batch(self, rows: list[Outcome]) -> None:
        if self._primary_ok():
            try:
                self.primary.write_batch(rows)
                return
            except Exception as exc:
                self._failed("writing", exc)
        self.spill.write_batch(rows)  # raises if the disk fails too: the recorder counts a drop
        metrics.OUTCOMES_SPILLED.inc(len(rows))

    def spilled(self) -> int:
        return self.spill.count()

    def replay(self, limit: int = 500) -> int:
        """Move up to ``limit`` of the oldest spilled records to the primary; the number moved."""
        if not self._primary_ok():
            return 0
        with self._replay_lock:
            cols = ", ".join(_COLUMNS)
            with self.spill._lock:
                got = self.spill.conn.execute(f"SELECT {cols} FROM outcomes ORDER BY ts LIMIT ?", (limit,)).fetchall()
            if not got:
                return 0
            rows = [from_row(r) for r in got]
            try:
                self.primary.write_batch(rows)
            except Exception as exc:
                self._failed("replaying", exc)
                return 0
            ids = [(o.request_id,) for o in rows]
            with self.spill._lock, self.spill.conn:
                self.spill.conn.executemany("DELETE FROM outcomes WHERE request_id=?", ids)
            metrics.OUTCOMES_REPLAYED.inc(len(rows))
            log.info("replayed %d spilled outcome records", len(rows))
            return len(rows)

    # -- reads and feedback go to the primary; a record still in the spill file is found there --
    def get(self, request_id: str) -> Outcome | None:
        found = self.spill.get(request_id)
        return found if found is not None else self.primary.get(request_id)

    def exists(self, request_id: str) -> bool:
        return self.spill.exists(request_id) or self.primary.exists(request_id)

    def count(self) -> int:
        return self.primary.count() + self.spill.count()

    def add_feedback(self, fb: Feedback) -> bool:
        return self.primary.add_feedback(fb)

    def feedback(self, request_id: str) -> list[Feedback]:
        return self.primary.feedback(request_id)

    def add_spend(self, item: Spend) -> None:
        self.primary.add_spend(item)

    def close(self) -> None:
        self.spill.close()
        self.primary.close()
