"""A bounded queue between the request path and the outcome store.

``submit`` never blocks a request: when the queue is full the record is dropped, counted in
``switchyard_outcomes_dropped_total`` and logged. A background task drains the queue in batches
and writes them with the store's blocking ``write_batch`` in a worker thread. ``stop`` flushes
everything that was queued (graceful shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from gateway import metrics
from gateway.outcomes.record import Outcome

log = logging.getLogger("switchyard.outcomes")


class OutcomeStore(Protocol):
    name: str

    def write_batch(self, rows: list[Outcome]) -> None: ...
    def close(self) -> None: ...


class Recorder:
    def __init__(self, store: OutcomeStore, queue_size: int = 10_000, batch_size: int = 256) -> None:
        self.store = store
        self.queue: asyncio.Queue[Outcome] = asyncio.Queue(maxsize=queue_size)
        self.batch_size = batch_size
        self._task: asyncio.Task | None = None
        self.dropped = 0
        self.written = 0

    def submit(self, outcome: Outcome) -> bool:
        try:
            self.queue.put_nowait(outcome)
        except asyncio.QueueFull:
            self.dropped += 1
            metrics.OUTCOMES_DROPPED.labels(self.store.name).inc()
            log.warning("outcome queue full (%d): dropped record %s", self.queue.maxsize, outcome.request_id)
            return False
        metrics.OUTCOME_QUEUE_DEPTH.set(self.queue.qsize())
        return True

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outcome-writer")

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            batch = [first]
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[Outcome]) -> None:
        try:
            await asyncio.to_thread(self.store.write_batch, batch)
            self.written += len(batch)
            metrics.OUTCOMES_WRITTEN.labels(self.store.name).inc(len(batch))
        except Exception:
            log.exception("writing %d outcome records failed", len(batch))
        finally:
            metrics.OUTCOME_QUEUE_DEPTH.set(self.queue.qsize())

    async def stop(self) -> None:
        """Flush what is queued, then close the store."""
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        rest: list[Outcome] = []
        while not self.queue.empty():
            rest.append(self.queue.get_nowait())
        for i in range(0, len(rest), self.batch_size):
            await self._write(rest[i : i + self.batch_size])
        await asyncio.to_thread(self.store.close)
