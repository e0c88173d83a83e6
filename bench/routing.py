"""The routing decision alone, in process: embed (fast static table or ONNX MiniLM) + score + choose.

For prompts of 10, 100 and 256 word-piece tokens, every prompt unique (no cache hits):

- ``fast``: one decision at a time on the fast tier (static table inline, ONNX router,
  ``routers.decision.choose``): what ``encoder: fast`` pays, and the first step of ``tiered``;
- ``batch1``: one decision at a time through the gateway's ``AsyncEmbedder`` (thread hop and
  micro-batcher included) then ``router.score``: the latency a lone request pays;
- ``concurrent``: ``concurrency`` tasks deciding at once (the micro-batcher groups them);
  per-decision latency and decisions per second;
- ``cache_hit`` (at batch 1): the same prompt again (LRU hit + score).

On real prompts from ``../shared/data`` (``bench.prompts``, each made unique), one at a time:
``fast``, ``accurate`` and ``tiered`` (the gateway's rule: fast, then MiniLM when the margin
is inside the band; threshold for half the calibration prompts to the strong model) with the
share of decisions the tiered rule escalated.

Usage: ``python -m bench.routing [--n 200] [--concurrency 16] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by word but "
    "not what all were we when your can said there use an each which she do how their if will up other about out many "
    "then them these so some her would make like him into time has look two more write go see number no way could people "
    "my than first water been call who oil its now find long down day did get come made may part over new sound take only "
    "little work know place year live me back give most very after thing our just name good sentence man think say great "
    "where help through much before line right too mean old any same tell boy follow came want show also around form three "
    "small set put end does another well large must big even such because turn here why ask went men read need land different "
    "home us move try kind hand picture again change off play spell air away animal house point page letter mother answer "
    "found study still learn should america world explain derivative integral protein theorem kubernetes python gradient"
).split()


def make_prompt(encoder: Any, tokens: int, rng: random.Random) -> str:
    """A unique random-word prompt of exactly ``tokens`` word pieces (without special tokens)."""
    words = [rng.choice(WORDS) for _ in range(tokens * 2)]
    ids = encoder.tokenizer.encode(" ".join(words), add_special_tokens=False).ids[:tokens]
    return encoder.tokenizer.decode(ids)


def pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "n": len(xs),
    }


async def _decide(embedder: Any, router: Any, text: str) -> None:
    emb = await embedder.embed_one(text)
    router.score(emb[None, :])


def _margin(router: Any, emb: np.ndarray, threshold: float, cdf: Any) -> float:
    """Score one embedding and return the decision margin (what the gateway's tiers compute:
    calibration percentiles ``cdf`` for a pair router with stored quantiles, read once per router
    as the gateway reads them once per policy load)."""
    from routers.encoders.tiered import margins

    return float(margins(router.score(emb[None, :]), threshold, cdf)[0])


async def real_prompts_bench(
    embedder: Any, fast: Any, router: Any, n: int, band: float = 0.05, seed: int = 0
) -> dict[str, Any]:
    """fast / accurate / tiered decisions on real unique prompts, one at a time."""
    from bench.prompts import real_prompts
    from routers.calibration import strong_share_threshold
    from routers.encoders.tiered import ESCALATION_MAX_TOKENS, strong_win_cdf

    cdf = strong_win_cdf(router.meta)
    threshold = strong_share_threshold(router.meta, 0.5, router.meta.get("strong"), router.meta.get("weak"))
    texts = [f"{t}\n(request {seed}-{i})" for i, t in enumerate(real_prompts(n, seed))]
    lat: dict[str, list[float]] = {"fast": [], "tiered": [], "accurate": []}
    escalated = 0
    for i, t in enumerate(texts):
        t0 = time.perf_counter()
        _margin(router, fast.embed_one(t), threshold, cdf)
        lat["fast"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _margin(router, await embedder.embed_one(t), threshold, cdf)
        lat["accurate"].append(time.perf_counter() - t0)
        u = t + f" (tiered {i})"  # unseen by the embedder's cache
        t0 = time.perf_counter()
        if _margin(router, fast.embed_one(u), threshold, cdf) < band:
            escalated += 1
            _margin(router, await embedder.embed_one(u, max_tokens=ESCALATION_MAX_TOKENS), threshold, cdf)
        lat["tiered"].append(time.perf_counter() - t0)
    out: dict[str, Any] = {k: pct(v) for k, v in lat.items()}
    out["tiered"]["escalated_share"] = escalated / max(1, len(texts))
    out["threshold"], out["band"], out["n"] = threshold, band, len(texts)
    return out


async def bench(router_path: Path, n: int, concurrency: int, lengths: list[int], seed: int = 0) -> dict:
    from routers.base import load_router
    from routers.batching import AsyncEmbedder
    from routers.encoder import Encoder
    from routers.encoders.static import StaticEncoder
    from routers.encoders.tiered import strong_win_cdf

    encoder = Encoder.default()
    fast = StaticEncoder.default()
    embedder = AsyncEmbedder(encoder)
    router = load_router(router_path)
    cdf = strong_win_cdf(router.meta)
    rng = random.Random(seed)
    out: dict[str, Any] = {
        "encoder_threads": encoder.threads,
        "router": str(router_path),
        "concurrency": concurrency,
        "max_batch": embedder.max_batch,
        "max_wait_ms": embedder.max_wait * 1e3,
        "lengths": {},
    }
    for _ in range(20):  # warm up ONNX (first runs allocate)
        await _decide(embedder, router, make_prompt(encoder, 50, rng))
    for tokens in lengths:
        prompts = [make_prompt(encoder, tokens, rng) for _ in range(n * 2 + concurrency)]
        lat: list[float] = []
        for p in prompts[:n]:
            t0 = time.perf_counter()
            await _decide(embedder, router, p)
            lat.append(time.perf_counter() - t0)
        batch1 = pct(lat)
        flat: list[float] = []
        fcpu: list[float] = []
        for p in prompts[:n]:  # the fast tier has no cache: these cost what unseen prompts cost
            t0, c0 = time.perf_counter(), time.process_time()
            _margin(router, fast.embed_one(p), 0.5, cdf)
            flat.append(time.perf_counter() - t0)
            fcpu.append(time.process_time() - c0)  # CPU: steady where wall time has preemption in it
        hits: list[float] = []
        for p in prompts[: min(n, 100)]:  # all cached by now
            t0 = time.perf_counter()
            await _decide(embedder, router, p)
            hits.append(time.perf_counter() - t0)
        queue = iter(prompts[n:])
        clat: list[float] = []

        async def worker() -> None:
            for p in queue:  # noqa: B023 (awaited within this iteration)
                t0 = time.perf_counter()
                await _decide(embedder, router, p)
                clat.append(time.perf_counter() - t0)  # noqa: B023

        sizes0 = embedder.batches
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        conc = {
            **pct(clat),
            "decisions_per_s": len(clat) / wall,
            "mean_batch": len(clat) / max(1, embedder.batches - sizes0),
        }
        out["lengths"][str(tokens)] = {
            "batch1": batch1,
            "cache_hit": pct(hits),
            "concurrent": conc,
            "fast": pct(flat),
            "fast_cpu": pct(fcpu),
        }
    out["real"] = await real_prompts_bench(embedder, fast, router, n, seed=seed)
    embedder.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--router", help="router artifact folder (default: shipped mf, else a synthetic one)")
    ap.add_argument("--n", type=int, default=200, help="decisions per length and mode")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--lengths", default="10,100,256")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    import tempfile

    from bench.router_artifact import router_for_bench

    path, _ = router_for_bench(Path(tempfile.mkdtemp()), args.router)
    res = asyncio.run(bench(path, args.n, args.concurrency, [int(x) for x in args.lengths.split(",")]))
    text = json.dumps(res, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
