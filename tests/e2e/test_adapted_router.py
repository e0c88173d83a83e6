"""A router published by ``shunter retrain`` (kind ``adapted``: a linear head over the deployed
router) served by a running gateway, whose process has never imported the training side.

The artifacts are adapted here from the shipped kNN pair router, from the default policy's
``prior-fast`` (on the static-table tier) and from the matrix-factorisation router (whose
``strong_win`` is its own, not its quality gap) with 60 real MMLU outcomes, and the gateway's decision
for each prompt is compared with the artifact scored offline by the policy's encoder tier.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

from gateway.learning.publish import set_router_path
from routers.adapt import Judged, adapt
from routers.base import load_router
from routers.data import load_table, repo_root
from routers.encoder import Encoder
from tests.support.paths import DATA
from tests.support.policies import chat
from tests.support.procs import upstream_entry
from tests.support.wait import wait_until

MATH = DATA / "routellm-mmlu" / "mmlu_college_mathematics.csv"
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


def _encoder(tier: str):
    if tier == "fast":
        from routers.encoders.static import StaticEncoder

        return StaticEncoder.default()
    return Encoder.default()


@pytest.fixture(
    scope="module",
    params=[("knn-mmlu", "accurate"), ("prior-fast", "fast"), ("mf-mmlu", "accurate")],
    ids=lambda p: p[0],
)
def adapted(request, tmp_path_factory):
    """(artifact, 8 prompts it was not adapted on, the policy's encoder tier): the shipped router
    adapted to 60 judged prompts embedded by the tier it serves from (the default policy's
    ``prior-fast`` on the static table)."""
    if not MATH.exists():
        pytest.skip(f"shared data not found at {MATH}")
    name, tier = request.param
    t = load_table(MATH, "routellm")
    emb = _encoder(tier).embed(t.prompts)
    rows = np.arange(60)
    judged = Judged(emb[rows], list(t.models), t.quality[rows].astype(float), ids=[f"req-{i}" for i in rows])
    out = tmp_path_factory.mktemp("adapted") / f"{name}-adapted"
    adapt(repo_root() / "routers/artifacts" / name, judged, out, domain_emb=emb, seed=0)
    prompts = t.prompts[len(rows) : len(rows) + 8]
    assert len(prompts) == 8
    return out, prompts, tier


def _pair_gateway(gateway, fake_upstream, router_path, tier):
    weak, strong = fake_upstream("weak-v1"), fake_upstream("strong-v1")
    router = {
        "path": str(router_path),
        "model_map": {"weak": WEAK, "strong": STRONG},
        "strong": "strong",
        "weak": "weak",
    }
    upstreams = {"weak": upstream_entry(weak), "strong": upstream_entry(strong, input_price=2.5, output_price=10)}
    policy = {"candidates": ["weak", "strong"], "router": router, "objective": {"threshold": 0.5}, "encoder": tier}
    return gateway({"upstreams": upstreams, "policies": {"pair": policy}})


def test_gateway_serves_an_adapted_router(gateway, fake_upstream, adapted):
    art, prompts, tier = adapted
    gw = _pair_gateway(gateway, fake_upstream, art, tier)
    offline = load_router(art)
    assert offline.meta["kind"] == "adapted"
    for text in prompts:
        resp, h = chat(gw, text, model="router-pair")
        sw = float(offline.score(_encoder(tier).embed([text])).strong_win[0])
        assert h["x-shunter-reason"] == "router" and h["x-shunter-router"] == "adapted"
        assert float(h["x-shunter-strong-win"]) == pytest.approx(sw, abs=1e-3)
        if abs(sw - 0.5) > 1e-3:
            assert resp.model == ("strong" if sw >= 0.5 else "weak")


def test_a_published_adapted_router_is_hot_swapped_in(gateway, fake_upstream, adapted):
    """What ``retrain`` does on publish: the policy file's router path is rewritten to the adapted
    artifact, and the running gateway (started on the shipped router) reloads onto it."""
    art, prompts, tier = adapted
    base = load_router(art / "base")
    gw = _pair_gateway(gateway, fake_upstream, art / "base", tier)
    assert chat(gw, prompts[0], model="router-pair")[1]["x-shunter-router"] == base.meta["kind"]
    set_router_path(gw.config, "pair", str(art))
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: chat(gw, prompts[0], model="router-pair")[1]["x-shunter-router"] == "adapted", 20, 0.1, "the swap"
    )
    assert "unknown router kind" not in gw.output()
