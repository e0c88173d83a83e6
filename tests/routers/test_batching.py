"""AsyncEmbedder: concurrent calls are micro-batched into one ONNX call; LRU cache."""

import asyncio

import numpy as np

from routers.batching import AsyncEmbedder


async def test_concurrent_calls_share_one_batch(encoder):
    batches, cache = [], []
    emb = AsyncEmbedder(
        encoder,
        max_batch=32,
        max_wait_ms=20,
        cache_size=100,
        on_batch=lambda n, s: batches.append((n, s)),
        on_cache=cache.append,
    )
    texts = [f"question number {i} about biology" for i in range(10)]
    vecs = await asyncio.gather(*(emb.embed_one(t) for t in texts))
    assert len(batches) == 1 and batches[0][0] == 10 and batches[0][1] > 0
    ref = np.stack([encoder.embed([t])[0] for t in texts])
    assert np.array_equal(np.stack(vecs), ref)  # batched == alone, bit for bit
    assert cache == [False] * 10 and emb.misses == 10

    again = await emb.embed_one(texts[3])
    assert emb.hits == 1 and len(batches) == 1
    assert np.array_equal(again, vecs[3])
    emb.close()


async def test_max_batch_splits_and_lru_evicts(encoder):
    sizes = []
    emb = AsyncEmbedder(encoder, max_batch=4, max_wait_ms=50, cache_size=5, on_batch=lambda n, s: sizes.append(n))
    texts = [f"t{i}" for i in range(10)]
    out = await emb.embed_many(texts)
    assert out.shape == (10, 384)
    assert sum(sizes) == 10 and max(sizes) <= 4
    assert len(emb._cache) == 5
    await emb.embed_one("t0")  # evicted -> recomputed
    assert emb.misses == 11
    # duplicates in flight are embedded once
    sizes.clear()
    await asyncio.gather(emb.embed_one("dup"), emb.embed_one("dup"))
    assert sizes == [1]
    emb.close()


async def test_mixed_lengths_split_by_padding(encoder):
    """A micro-batch of one long prompt and short ones: the long one gets its own ONNX call."""
    calls = []
    emb = AsyncEmbedder(encoder, max_batch=32, max_wait_ms=20, cache_size=0, on_batch=lambda n, s: calls.append(n))
    short = [f"what is {i} plus {i}?" for i in range(6)]
    long = "Consider the following passage. " * 40
    await asyncio.gather(*(emb.embed_one(t) for t in [*short, long]))
    assert sorted(calls) == [1, 6] and emb.batches == 2
    calls.clear()
    one = AsyncEmbedder(
        encoder,
        max_batch=32,
        max_wait_ms=20,
        cache_size=0,
        pad_slack=float("inf"),
        max_call_tokens=float("inf"),
        on_batch=lambda n, s: calls.append(n),
    )
    vecs = await asyncio.gather(*(one.embed_one(t) for t in [*short, long]))
    assert calls == [7]
    assert np.array_equal(np.stack(vecs), encoder.embed([*short, long]))
    emb.close()
    one.close()
