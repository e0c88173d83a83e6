"""A tiered policy's escalation embeds with MiniLM cut to 64 tokens; the accurate tier keeps 256.

In process: the real prior artifact, the real static table and MiniLM behind the gateway's
``AsyncEmbedder``; the ONNX calls are observed (row widths) by wrapping the encoder's ``_run``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from gateway.policy import tiers
from gateway.policy.schema import Config
from gateway.runtime import Runtime, build_policies
from routers.batching import AsyncEmbedder
from routers.encoder import Encoder
from routers.encoders.tiered import ESCALATION_MAX_TOKENS

ROOT = Path(__file__).resolve().parents[3]
PRIOR = ROOT / "routers" / "artifacts" / "prior"
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
LONG = " ".join(f"Question {i}: which organ filters blood and produces bile in the human body?" for i in range(40))


def runtime(encoder: str) -> tuple[Runtime, object]:
    if not (PRIOR / "router.json").exists():
        pytest.skip(f"no router artifact at {PRIOR}")
    cfg = Config.model_validate(
        {
            "upstreams": {n: {"base_url": "http://127.0.0.1:9/v1"} for n in ("weak", "strong")},
            "policies": {
                "p": {
                    "candidates": ["weak", "strong"],
                    "router": {"path": str(PRIOR), "model_map": {"weak": WEAK, "strong": STRONG}},
                    "objective": {"target_strong_share": 0.3},
                    "encoder": encoder,
                    "encoder_band": 1.0,  # every prompt is inside the band: always escalate
                }
            },
        }
    )
    policies = build_policies(cfg, ROOT)
    return Runtime(cfg, ROOT, {}, policies, AsyncEmbedder(Encoder.default(), cache_size=0)), policies["p"]


async def decide(rt: Runtime, pr, text: str) -> tiers.Scored:
    cands = ["weak", "strong"]
    return await tiers.score(rt, pr, text, None, cands, cands, {"weak": 1.0, "strong": 10.0}, pr.objective)


def watch_widths(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    enc = Encoder.default()
    widths: list[int] = []
    real = enc._run

    def run(rows):
        widths.extend(len(r) for r in rows)
        return real(rows)

    monkeypatch.setattr(enc, "_run", run)
    return widths


async def test_escalation_embeds_at_most_64_tokens(monkeypatch):
    rt, pr = runtime("tiered")
    assert pr.encoder == "tiered"
    assert Encoder.default().count_tokens(LONG) > 4 * ESCALATION_MAX_TOKENS
    widths = watch_widths(monkeypatch)
    got = await decide(rt, pr, LONG)
    assert got.tier == "accurate"
    assert widths and max(widths) <= ESCALATION_MAX_TOKENS == 64
    # the decision is the router's on the 64-token embedding, not on the full one
    cut = Encoder.default().embed([LONG], max_tokens=64)[0]
    assert np.array_equal(got.embedding, cut)
    full = Encoder.default().embed([LONG])[0]
    assert not np.allclose(got.embedding, full)
    rt.embedder.close()


async def test_accurate_tier_keeps_the_full_cut(monkeypatch):
    rt, pr = runtime("accurate")
    widths = watch_widths(monkeypatch)
    got = await decide(rt, pr, LONG)
    assert got.tier == "accurate" and max(widths) == Encoder.default().max_tokens == 256
    rt.embedder.close()


async def test_embedder_caches_each_cut_apart():
    emb = AsyncEmbedder(Encoder.default(), max_wait_ms=20)
    short, full = await emb.embed_one(LONG, max_tokens=64), await emb.embed_one(LONG)
    both = await emb.embed_many([LONG, LONG])  # cache hits, not the other cut
    assert not np.allclose(short, full) and np.array_equal(both[0], full)
    assert np.array_equal(await emb.embed_one(LONG, max_tokens=64), short) and emb.hits == 3
    emb.close()
    fresh = AsyncEmbedder(Encoder.default(), cache_size=0)  # both cuts in one micro-batch
    a, b = await asyncio.gather(fresh.embed_one(LONG, max_tokens=64), fresh.embed_one(LONG))
    assert np.array_equal(a, short) and np.array_equal(b, full)
    fresh.close()
