"""A bounded queue between the request path and the outcome store.

``submit`` never blocks a request: when the queue is full the record is dropped, counted in
``shunter_outcomes_dropped_total`` and logged (at most once a second, with the running
total). A batch the store fails to write is counted there too (with Redis, the store first
spills it to a local file: ``gateway.outcomes.spill``; the recorder replays that file). A background task drains the queue in batches and writes them with the store's
blocking ``write_batch`` in a worker thread. ``stop`` lets the batch being written finish, then
flushes everything still queued (graceful shutdown: uvicorn has drained in-flight requests
before the lifespan calls it).

``pending(request_id)`` / ``wait_written`` let ``/v1/feedback`` accept feedback for a record
that is still queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway import metrics
from gateway.outcomes.record import Outcome
from gateway.outcomes.stores import Store

log = logging.getLogger("shunter.outcomes")


class Recorder:
    def __init__(self, store: Store, queue_size: int = 10_000, batch_size: int = 256) -> None:
        self.store = store
        self.queue: asyncio.Queue[Outcome] = asyncio.Queue(maxsize=queue_size)
        self.linger = 0.05  # seconds between two batch writes (the first record after a pause goes at once)
        metrics.OUTCOMES_WRITTEN.labels(store.name).inc(0)  # dashboards show 0, not "no data"
        metrics.OUTCOMES_DROPPED.labels(store.name).inc(0)
        self.batch_size = batch_size
        self._task: asyncio.Task | None = None
        self._replayer: asyncio.Task | None = None
        self._writing: asyncio.Future | None = None
        self._pending: set[str] = set()
        self._last_drop_log = 0.0
        self.dropped = 0
        self.written = 0

    def _drop(self, n: int, why: str, what: str) -> None:
        self.dropped += n
        metrics.OUTCOMES_DROPPED.labels(self.store.name).inc(n)
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:
            self._last_drop_log = now
            log.warning("%s: dropped %s (%d dropped so far)", why, what, self.dropped)

    def submit(self, outcome: Outcome) -> bool:
        try:
            self.queue.put_nowait(outcome)
        except asyncio.QueueFull:
            self._drop(1, f"outcome queue full ({self.queue.maxsize})", f"record {outcome.request_id}")
            return False
        self._pending.add(outcome.request_id)
        metrics.OUTCOME_QUEUE_DEPTH.set(self.queue.qsize())
        return True

    def pending(self, request_id: str) -> bool:
        """True while the record is queued or being written."""
        return request_id in self._pending

    async def wait_written(self, request_id: str, timeout: float = 5.0) -> bool:
        """Wait until a queued record has been handed to the store; False on timeout."""
        deadline = time.monotonic() + timeout
        while request_id in self._pending:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outcome-writer")
        replay = getattr(self.store, "replay", None)  # a store that spills (gateway.outcomes.spill)
        if replay is not None:
            self._replayer = asyncio.create_task(self._replay_loop(replay), name="outcome-replay")

    async def _replay_loop(self, replay: Callable[[], int]) -> None:
        """Move spilled records back to the store whenever it answers (``gateway.outcomes.spill``)."""
        every = getattr(self.store, "replay_every", 1.0)
        while True:
            try:
                moved = await asyncio.to_thread(replay)
            except Exception:
                log.exception("replaying spilled outcome records failed")
                moved = 0
            if not moved:  # nothing left, or the store is still away: wait; else keep going
                await asyncio.sleep(every)

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            batch = [first]
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self._writing = asyncio.ensure_future(self._write(batch))
            await asyncio.shield(self._writing)  # stop() must not cut a write in half
            self._writing = None
            if self.linger:  # under load: one write (one thread hop, one commit) per linger, not per request
                await asyncio.sleep(self.linger)

    async def _write(self, batch: list[Outcome]) -> None:
        try:
            await asyncio.to_thread(self.store.write_batch, batch)
            self.written += len(batch)
            metrics.OUTCOMES_WRITTEN.labels(self.store.name).inc(len(batch))
        except Exception:
            log.exception("writing %d outcome records failed", len(batch))
            self._drop(len(batch), "the outcome store failed", f"{len(batch)} records")
        finally:
            for o in batch:
                self._pending.discard(o.request_id)
            metrics.OUTCOME_QUEUE_DEPTH.set(self.queue.qsize())

    async def stop(self) -> None:
        """Finish the write in progress, flush what is queued, then close the store."""
        if self._replayer:
            self._replayer.cancel()
            try:
                await self._replayer
            except asyncio.CancelledError:
                pass
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._writing is not None:
            await self._writing
        rest: list[Outcome] = []
        while not self.queue.empty():
            rest.append(self.queue.get_nowait())
        for i in range(0, len(rest), self.batch_size):
            await self._write(rest[i : i + self.batch_size])
        log.info("outcome recorder stopped: %d written, %d dropped", self.written, self.dropped)
        await asyncio.to_thread(self.store.close)
