"""Encoder tiers through a running gateway: fast, accurate, and tiered escalation by margin.

The router is a real knn artifact trained here on both encoders' embeddings (``shunter train
--encoder both`` on one RouteLLM MMLU file), so the fast and accurate scores of a prompt are
computed offline with the same encoders and artifact, and the threshold is placed next to (or
far from) the fast tier's score to put the prompt inside (or outside) the band.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from routers.base import encoder_hashes, load_router
from routers.encoder import Encoder
from routers.encoders.static import StaticEncoder
from routers.encoders.tiered import strong_win_cdf
from tests.support.paths import DATA
from tests.support.policies import chat, outcome
from tests.support.procs import upstream_entry

MMLU = DATA / "routellm-mmlu" / "mmlu_anatomy.csv"
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
BAND = 0.05


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    if not MMLU.exists():
        pytest.skip(f"shared data not found at {MMLU}")
    out = tmp_path_factory.mktemp("router") / "knn-both"
    cmd = [sys.executable, "-m", "gateway", "train", "--router", "knn", "--encoder", "both"]
    cmd += ["--data", str(MMLU), "--format", "routellm", "--out", str(out), "--opt", "k=10"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def prompt() -> str:
    with MMLU.open() as f:
        rows = list(csv.reader(f))
    return rows[7][0]


def far_threshold(artifact: Path, fast: float, points: float = 0.3) -> float:
    """A threshold ``points`` calibration percentiles away from the fast score (the band's units)."""
    cdf = strong_win_cdf(json.loads((artifact / "router.json").read_text()))
    levels = np.linspace(0, 1, len(cdf))
    at = float(np.interp(fast, cdf, levels))
    return float(np.interp(at - points if at >= points else at + points, levels, cdf))


def strong_wins(artifact: Path, text: str) -> tuple[float, float]:
    router = load_router(artifact)
    fast = float(router.score(StaticEncoder.default().embed([text])).strong_win[0])
    accurate = float(router.score(Encoder.default().embed([text])).strong_win[0])
    return fast, accurate


@pytest.fixture
def gw(gateway, fake_upstream, artifact, tmp_path):
    weak, strong = fake_upstream("weak-v1"), fake_upstream("strong-v1")
    router = {"path": str(artifact), "model_map": {"weak": WEAK, "strong": STRONG}, "strong": "strong", "weak": "weak"}

    def policy(encoder: str) -> dict:
        return {
            "candidates": ["weak", "strong"],
            "router": router,
            "objective": {"threshold": 0.5},
            "encoder": encoder,
            "encoder_band": BAND,
        }

    cfg = {
        "server": {"outcomes_path": str(tmp_path / "outcomes.sqlite")},
        "upstreams": {"weak": upstream_entry(weak), "strong": upstream_entry(strong, input_price=2.5, output_price=10)},
        "policies": {name: policy(name) for name in ("tiered", "fast", "accurate")} | {"auto": policy("auto")},
    }
    return gateway(cfg)


def test_artifact_pins_both_encoders(artifact):
    meta = json.loads((artifact / "router.json").read_text())
    assert encoder_hashes(meta) == [Encoder.default().encoder_hash, StaticEncoder.default().encoder_hash]


def test_prompt_inside_the_band_escalates_to_minilm(gw, artifact, tmp_path):
    text = prompt()
    fast, accurate = strong_wins(artifact, text)
    assert abs(fast - accurate) > 1e-4  # the two tiers really do score differently
    near = fast  # the fast tier's margin is 0: inside the band
    resp, h = chat(gw, text, model="router-tiered", headers={"x-shunter-threshold": f"{near:.6f}"})
    assert h["x-shunter-encoder-tier"] == "accurate"
    assert float(h["x-shunter-strong-win"]) == pytest.approx(accurate, abs=1e-3)
    if abs(accurate - near) > 1e-3:
        assert resp.model == ("strong" if accurate >= near else "weak")
    row = outcome(tmp_path / "outcomes.sqlite", h["x-shunter-request-id"])
    assert row["encoder_tier"] == "accurate" and row["embedding"] is not None


def test_prompt_outside_the_band_is_decided_by_the_fast_tier(gw, artifact, tmp_path):
    text = prompt()
    fast, _ = strong_wins(artifact, text)
    far = far_threshold(artifact, fast)  # 0.3 percentile points away: six bands
    resp, h = chat(gw, text, model="router-tiered", headers={"x-shunter-threshold": f"{far:.6f}"})
    assert h["x-shunter-encoder-tier"] == "fast"
    assert float(h["x-shunter-strong-win"]) == pytest.approx(fast, abs=1e-3)
    assert resp.model == ("strong" if fast >= far else "weak")
    row = outcome(tmp_path / "outcomes.sqlite", h["x-shunter-request-id"])
    assert row["encoder_tier"] == "fast"  # the fast tier's embedding is what learning retrains on
    recorded = np.frombuffer(row["embedding"], np.float16).astype(np.float32)
    np.testing.assert_allclose(recorded, StaticEncoder().embed_one(text), atol=2e-3)


def test_single_tier_policies_and_auto(gw, artifact):
    text = prompt()
    fast, accurate = strong_wins(artifact, text)
    _, h = chat(gw, text, model="router-fast")
    assert h["x-shunter-encoder-tier"] == "fast"
    assert float(h["x-shunter-strong-win"]) == pytest.approx(fast, abs=1e-3)
    _, h = chat(gw, text, model="router-accurate")
    assert h["x-shunter-encoder-tier"] == "accurate"
    assert float(h["x-shunter-strong-win"]) == pytest.approx(accurate, abs=1e-3)
    # auto: the artifact pins both encoders, so the policy is tiered
    _, h = chat(gw, text, model="router-auto", headers={"x-shunter-threshold": f"{fast:.6f}"})
    assert h["x-shunter-encoder-tier"] == "accurate"
