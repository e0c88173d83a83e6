"""Policies with a learned router through a running gateway: objectives, overrides, reasoning.

The router is a real artifact trained here (``shunter train --router random`` on one
RouteLLM MMLU file: deterministic per prompt), so expected choices are computed offline with the
same encoder and artifact, and compared with what the gateway did.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from routers.base import load_router
from routers.calibration import strong_share_threshold
from routers.encoder import Encoder
from tests.support.paths import DATA
from tests.support.policies import chat
from tests.support.procs import upstream_entry

MMLU = DATA / "routellm-mmlu" / "mmlu_anatomy.csv"
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    if not MMLU.exists():
        pytest.skip(f"shared data not found at {MMLU}")
    out = tmp_path_factory.mktemp("router") / "random-pair"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "train",
            "--router",
            "random",
            "--data",
            str(MMLU),
            "--format",
            "routellm",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def prompts(n: int) -> list[str]:
    with MMLU.open() as f:
        rows = list(csv.reader(f))
    return [row[0] for row in rows[1 : n + 1] if row and row[0].strip()][:n]


def strong_win(artifact: Path, text: str) -> float:
    emb = Encoder.default().embed([text])
    return float(load_router(artifact).score(emb).strong_win[0])


@pytest.fixture
def gw(gateway, fake_upstream, artifact):
    weak, strong, thinker = fake_upstream("weak-v1"), fake_upstream("strong-v1"), fake_upstream("thinker-v1")
    router = {"path": str(artifact), "model_map": {"weak": WEAK, "strong": STRONG}, "strong": "strong", "weak": "weak"}
    cfg = {
        "upstreams": {
            "weak": upstream_entry(weak),
            "strong": upstream_entry(strong, input_price=2.5, output_price=10, capabilities=["streaming", "reasoning"]),
            "thinker": upstream_entry(
                thinker, input_price=1.1, output_price=4.4, capabilities=["streaming", "reasoning"]
            ),
        },
        "policies": {
            "pair": {
                "candidates": ["weak", "strong"],
                "router": router,
                "objective": {"target_strong_share": 0.5},
                "reasoning": [{"min_strong_win": 0.7, "effort": "high"}],
            },
            "hard": {
                "candidates": ["weak", "strong"],
                "router": router,
                "objective": {"threshold": 0.5},
                "reasoning": [{"max_quality": 1.0, "effort": "low", "model": "thinker"}],
            },
        },
    }
    return gateway(cfg)


def test_target_strong_share_matches_offline_choice(gw, artifact):
    import json

    thr = strong_share_threshold(json.loads((artifact / "router.json").read_text()), 0.5)
    texts = prompts(24)
    strong = 0
    for t in texts:
        resp, h = chat(gw, t, model="router-pair")
        sw = strong_win(artifact, t)
        assert h["x-shunter-reason"] == "router" and h["x-shunter-router"] == "random"
        assert float(h["x-shunter-strong-win"]) == pytest.approx(sw, abs=1e-3)
        if abs(sw - thr) > 1e-3:
            assert resp.model == ("strong" if sw >= thr else "weak"), (sw, thr)
        strong += resp.model == "strong"
        # the reasoning switch reads the same score; only the strong model can reason
        want_effort = resp.model == "strong" and sw >= 0.7
        assert (h.get("x-shunter-reasoning-effort") == "high") == want_effort
    assert 0.2 <= strong / len(texts) <= 0.8


def test_threshold_overrides_move_the_router_choice(gw, artifact):
    t = prompts(1)[0]
    assert chat(gw, t, model="router-pair-0")[0].model == "strong"  # strong_win >= 0 always
    assert chat(gw, t, model="router-pair-1.0")[0].model == ("strong" if strong_win(artifact, t) >= 1.0 else "weak")
    assert chat(gw, t, model="router-pair", headers={"x-shunter-threshold": "0"})[0].model == "strong"
    assert chat(gw, t, model="router-pair", extra_body={"shunter": {"threshold": 1.0}})[0].model == "weak"


def test_reasoning_rule_switches_to_a_reasoning_model(gw):
    resp, h = chat(gw, prompts(1)[0], model="router-hard")
    assert resp.model == "thinker" and h["x-shunter-reasoning-effort"] == "low"
    assert h["x-shunter-reason"] == "router"


def _metric(text: str, name: str) -> float:
    import re

    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_concurrent_requests_are_micro_batched(gw, artifact):
    """Concurrent prompts share ONNX calls, and each decision is the one made for the prompt alone."""
    import asyncio

    import httpx
    import openai

    organs = ["heart", "liver", "lung", "kidney", "brain", "spleen", "stomach", "pancreas"]
    texts = [
        f"Which nerve supplies the {organ} of patient number {i} in this anatomy case?"
        for i in range(3)
        for organ in organs
    ]
    before = httpx.get(f"{gw.url}/metrics").text

    async def burst():
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        raws = await asyncio.gather(
            *(
                client.chat.completions.with_raw_response.create(
                    model="router-pair", messages=[{"role": "user", "content": t}]
                )
                for t in texts
            )
        )
        await client.close()
        return raws

    raws = asyncio.run(burst())
    after = httpx.get(f"{gw.url}/metrics").text
    calls = _metric(after, "shunter_embedding_batch_size_count") - _metric(before, "shunter_embedding_batch_size_count")
    rows = _metric(after, "shunter_embedding_batch_size_sum") - _metric(before, "shunter_embedding_batch_size_sum")
    assert rows == len(texts)  # every prompt embedded once
    assert 1 <= calls < len(texts)  # ... in fewer ONNX calls than prompts
    for t, raw in zip(texts, raws):
        assert float(raw.headers["x-shunter-strong-win"]) == pytest.approx(strong_win(artifact, t), abs=6e-4)
