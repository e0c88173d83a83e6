"""Learning from recorded embeddings of either encoder tier: a router learns only from the tiers
it was trained on (the shipped prior pins both; a MiniLM-only router takes MiniLM's alone)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gateway.learning import dataset
from gateway.learning.retrain import accepted_tiers
from gateway.outcomes.record import Labelled, Outcome
from routers.base import load_router

ARTIFACTS = Path(__file__).resolve().parents[2] / "routers" / "artifacts"


def row(i: int, tier: str | None) -> Labelled:
    emb = np.random.default_rng(i).normal(size=384).astype(np.float16).tobytes()
    o = Outcome(request_id=f"r{i}", ts=time.time(), served="cheap", embedding=emb, encoder_tier=tier)
    return Labelled(outcome=o, score=1.0)


def test_the_prior_learns_from_both_tiers_a_minilm_router_from_minilm_only():
    assert accepted_tiers(load_router(ARTIFACTS / "prior").meta) == {"fast", "accurate"}
    assert accepted_tiers(load_router(ARTIFACTS / "knn-mmlu").meta) == {"accurate"}
    assert accepted_tiers({}) == {"accurate"}


def test_build_and_domain_keep_only_the_accepted_tiers():
    rows = [row(0, "fast"), row(1, "accurate"), row(2, None), row(3, "fast")]
    models, mm = ["weak", "strong"], {"cheap": "weak"}
    both = dataset.build(rows, models, mm, tiers={"fast", "accurate"})
    assert both.ids == ["r0", "r1", "r2", "r3"]
    minilm = dataset.build(rows, models, mm, tiers={"accurate"})
    assert minilm.ids == ["r1", "r2"] and minilm.skipped["other_encoder_tier"] == 2  # None: before tiers
    vecs, _ = dataset.embeddings([r.outcome for r in rows], {"fast"})
    assert len(vecs) == 2
