"""Micro-batching async embedder for the gateway.

``await embedder.embed_one(text)`` from many concurrent requests: a text arriving while no
batch is running goes at once (a lone request never waits); texts arriving while one runs
form the next batch, flushed when it finishes, after ``max_wait_ms``, or at ``max_batch``,
and embedded in a dedicated thread pool (never on the event loop) with ONE ONNX call when the
batch's token counts are within ``pad_slack`` of each other and it holds at most
``max_call_tokens`` padded tokens (otherwise one call per run of similar lengths:
``Encoder.embed``, whose settings apply where these are ``None``; embeddings are
bit-identical either way). ``embed_one(text, max_tokens=64)`` embeds a shorter head+tail cut
(the tiered policies' escalation); texts of one batch with different cuts go in separate
``Encoder.embed`` calls. Results are cached in an LRU keyed by the sha256 of the text and the
cut; identical requests in flight share one slot.

Metrics hooks (optional, e.g. for Prometheus): ``on_batch(size, seconds)`` after every ONNX
call, ``on_cache(hit)`` for every lookup. Counters ``hits``, ``misses``, ``batches`` (ONNX
calls) and the deque ``last_batch_sizes`` (rows per ONNX call) are kept as well.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .encoder import DIM, Encoder


def text_key(text: str, max_tokens: int | None = None) -> bytes:
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return key if max_tokens is None else key + max_tokens.to_bytes(4, "big")


class AsyncEmbedder:
    """Concurrent ``embed_one`` calls -> micro-batched ONNX calls + LRU cache."""

    def __init__(
        self,
        encoder: Encoder | None = None,
        max_batch: int = 32,
        max_wait_ms: float = 1.0,
        cache_size: int = 10_000,
        threads: int = 1,
        pad_slack: float | None = None,
        max_call_tokens: float | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        on_cache: Callable[[bool], None] | None = None,
    ) -> None:
        self.encoder = encoder or Encoder.default()
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.cache_size = cache_size
        self.pad_slack = pad_slack
        self.max_call_tokens = max_call_tokens
        self.on_batch, self.on_cache = on_batch, on_cache
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shunter-embed")
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._pending: dict[bytes, asyncio.Future] = {}
        self._queue: list[tuple[bytes, str, int | None]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._inflight = 0  # batches handed to the executor and not finished
        self.hits = 0
        self.misses = 0
        self.batches = 0
        self.last_batch_sizes: deque[int] = deque(maxlen=100)

    # -- cache ----------------------------------------------------------------------------
    def _cache_get(self, key: bytes) -> np.ndarray | None:
        vec = self._cache.get(key)
        if vec is not None:
            self._cache.move_to_end(key)
        return vec

    def _cache_put(self, key: bytes, vec: np.ndarray) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = vec
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        if self.on_cache:
            self.on_cache(hit)

    # -- public API -------------------------------------------------------------------------
    async def embed_one(self, text: str, max_tokens: int | None = None) -> np.ndarray:
        """The (384,) float32 unit embedding of ``text`` (cut to ``max_tokens``, default the encoder's)."""
        key = text_key(text, max_tokens)
        vec = self._cache_get(key)
        if vec is not None:
            self._count(True)
            return vec
        fut = self._pending.get(key)
        if fut is not None:  # same text already in flight
            self._count(True)
            return await asyncio.shield(fut)
        self._count(False)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending[key] = fut
        self._queue.append((key, text, max_tokens))
        if len(self._queue) >= self.max_batch:
            self._flush()
        elif self._flush_handle is None:  # idle: go on the next loop turn (texts of this turn join)
            self._flush_handle = (
                loop.call_later(self.max_wait, self._flush) if self._inflight else loop.call_soon(self._flush)
            )
        return await asyncio.shield(fut)

    async def embed_many(self, texts: list[str]) -> np.ndarray:
        """Embed several texts concurrently (each goes through the batcher and cache)."""
        vecs = await asyncio.gather(*(self.embed_one(t) for t in texts))
        return np.stack(vecs) if vecs else np.zeros((0, 384), np.float32)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- batching ---------------------------------------------------------------------------
    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._queue:
            return
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        self._inflight += 1
        asyncio.get_running_loop().create_task(self._run_counted(batch))
        if self._queue:  # more than one batch waiting
            self._flush_handle = asyncio.get_running_loop().call_later(0, self._flush)

    def _embed_sync(self, batch: list[tuple[bytes, str, int | None]]) -> tuple[np.ndarray, list[tuple[int, float]]]:
        calls: list[tuple[int, float]] = []
        vecs = np.zeros((len(batch), DIM), dtype=np.float32)
        for cut in dict.fromkeys(m for _, _, m in batch):  # one Encoder.embed per cut length
            idx = [i for i, (_, _, m) in enumerate(batch) if m == cut]
            vecs[idx] = self.encoder.embed(
                [batch[i][1] for i in idx],
                on_call=lambda n, s: calls.append((n, s)),
                pad_slack=self.pad_slack,
                max_call_tokens=self.max_call_tokens,
                max_tokens=cut,
            )
        return vecs, calls

    async def _run_counted(self, batch: list[tuple[bytes, str, int | None]]) -> None:
        try:
            await self._run(batch)
        finally:
            self._inflight -= 1
            if self._queue and not self._inflight:  # what queued up meanwhile goes now
                self._flush()

    async def _run(self, batch: list[tuple[bytes, str, int | None]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            vecs, calls = await loop.run_in_executor(self._executor, self._embed_sync, batch)
        except BaseException as exc:  # propagate to every waiter
            for key, *_ in batch:
                fut = self._pending.pop(key, None)
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
            return
        for size, seconds in calls:
            self.batches += 1
            self.last_batch_sizes.append(size)
            if self.on_batch:
                self.on_batch(size, seconds)
        for (key, *_), vec in zip(batch, vecs):
            vec = np.array(vec)
            vec.setflags(write=False)
            self._cache_put(key, vec)
            fut = self._pending.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(vec)
