"""Measure encoder latency on real prompts: ``python -m routers.encoder_bench [--threads 1 2]``.

Prints median single-row latency (ms) for short, medium and long (256-token) prompts, the cost
per prompt of one ONNX call per row against one ONNX call for a whole batch of mixed-length
prompts (why ``Encoder.batch_size`` defaults to 1), and the throughput of ``AsyncEmbedder``
under 64 concurrent requests.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import List

import typer

from .data import default_paths, load_table
from .encoder import Encoder


def _bucket(enc: Encoder, texts: list[str], lo: int, hi: int, n: int = 40) -> list[str]:
    out = [t for t in texts if lo <= enc.count_tokens(t) < hi]
    return out[:n]


def main(threads: List[int] = typer.Option([1, 2], "--threads")) -> None:
    mmlu = load_table(default_paths("routellm"), "routellm").prompts[::50]
    rb = load_table(default_paths("routerbench"), "routerbench").prompts[::10]
    for th in threads:
        enc = Encoder(threads=th)
        enc.embed(mmlu[:4])
        for name, (lo, hi) in {"short <48 tok": (0, 48), "medium 48-160": (48, 160), "long >=254": (254, 10**9)}.items():
            texts = _bucket(enc, mmlu + rb, lo, hi)
            lat = []
            for t in texts:
                t0 = time.perf_counter()
                enc.embed([t])
                lat.append((time.perf_counter() - t0) * 1e3)
            print(f"threads={th} {name}: median {statistics.median(lat):.1f} ms (n={len(lat)})")

        for n in (8, 32):
            per: dict[int, list[float]] = {1: [], n: []}
            for rep in range(10):
                batch = mmlu[rep * n : (rep + 1) * n]
                for size in per:
                    enc.batch_size = size
                    t0 = time.perf_counter()
                    enc.embed(batch)
                    per[size].append((time.perf_counter() - t0) * 1e3 / n)
            enc.batch_size = 1
            print(
                f"threads={th} {n} mixed prompts: {statistics.median(per[1]):.1f} ms/prompt one row per call, "
                f"{statistics.median(per[n]):.1f} ms/prompt in one call"
            )

        from .batching import AsyncEmbedder

        async def burst() -> float:
            emb = AsyncEmbedder(enc, max_batch=32, max_wait_ms=1.0, cache_size=0)
            texts = [f"{t} #{i}" for i, t in enumerate(mmlu[:64])]
            t0 = time.perf_counter()
            await asyncio.gather(*(emb.embed_one(t) for t in texts))
            emb.close()
            return len(texts) / (time.perf_counter() - t0)

        print(f"threads={th} AsyncEmbedder 64 concurrent: {asyncio.run(burst()):.0f} texts/s")


if __name__ == "__main__":
    typer.run(main)
