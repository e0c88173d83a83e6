"""Measure encoder latency on real prompts: ``python -m routers.encoder_bench [--threads 1 2]``.

Prints median single-row latency (ms) for short, medium and long (256-token) prompts; the cost
per prompt of a batch of 8 or 32 prompts embedded three ways: one ONNX call per row, one ONNX
call for the whole batch, and ``Encoder.embed``'s default (one call per run of similar token
counts, ``pad_slack`` 0.25, at most 512 padded tokens per call), on mixed real prompts and on
short chat-like ones; and the
throughput of ``AsyncEmbedder`` under 64 concurrent requests.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time

import typer

from .data import default_paths, load_table
from .encoder import Encoder


def _bucket(enc: Encoder, texts: list[str], lo: int, hi: int, n: int = 40) -> list[str]:
    out = [t for t in texts if lo <= enc.count_tokens(t) < hi]
    return out[:n]


def main(threads: list[int] = typer.Option([1, 2], "--threads")) -> None:
    mmlu = load_table(default_paths("routellm"), "routellm").prompts[::50]
    rb = load_table(default_paths("routerbench"), "routerbench").prompts[::10]
    lr = load_table(default_paths("llmrouter"), "llmrouter").prompts[::20]
    for th in threads:
        enc = Encoder(threads=th)
        enc.embed(mmlu[:4])
        for name, (lo, hi) in {
            "short <48 tok": (0, 48),
            "medium 48-160": (48, 160),
            "long >=254": (254, 10**9),
        }.items():
            texts = _bucket(enc, mmlu + rb, lo, hi)
            lat = []
            for t in texts:
                t0 = time.perf_counter()
                enc.embed([t])
                lat.append((time.perf_counter() - t0) * 1e3)
            print(f"threads={th} {name}: median {statistics.median(lat):.1f} ms (n={len(lat)})")

        chat = [t.split("\n")[0][:120] for t in lr]
        for label, pool in (("mixed", mmlu + rb + lr), ("short chat", chat)):
            rng = random.Random(0)
            for n in (8, 32):
                ways = {
                    "per row": (1, math.inf, math.inf),
                    "one call": (n, math.inf, math.inf),
                    "default": (n, 0.25, 512),
                }
                per: dict[str, list[float]] = {k: [] for k in ways}
                for _ in range(8):
                    batch = rng.sample(pool, n)
                    for way, (max_batch, slack, tokens) in ways.items():
                        enc.max_batch = max_batch
                        t0 = time.perf_counter()
                        enc.embed(batch, pad_slack=slack, max_call_tokens=tokens)
                        per[way].append((time.perf_counter() - t0) * 1e3 / n)
                enc.max_batch = 32
                print(
                    f"threads={th} {n} {label} prompts, ms/prompt: "
                    + ", ".join(f"{way} {statistics.median(v):.2f}" for way, v in per.items())
                )

        from .batching import AsyncEmbedder

        async def burst() -> float:
            emb = AsyncEmbedder(enc, max_batch=32, max_wait_ms=1.0, cache_size=0)  # noqa: B023 (awaited in this iteration)
            texts = [f"{t} #{i}" for i, t in enumerate(mmlu[:64])]
            t0 = time.perf_counter()
            await asyncio.gather(*(emb.embed_one(t) for t in texts))
            emb.close()
            return len(texts) / (time.perf_counter() - t0)

        print(f"threads={th} AsyncEmbedder 64 concurrent: {asyncio.run(burst()):.0f} texts/s")


if __name__ == "__main__":
    typer.run(main)
