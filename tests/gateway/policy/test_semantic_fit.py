"""Semantic route matching with the real encoder, and ``shunter routes fit``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gateway.policy.fit import predict, tune
from gateway.policy.loader import load_config
from gateway.policy.schema import SemanticRoute
from gateway.policy.semantic import SemanticIndex

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def index() -> SemanticIndex:
    return SemanticIndex(
        [
            SemanticRoute(
                name="code",
                model="x",
                threshold=0.3,
                utterances=["write a python function", "fix this bug in my javascript"],
            ),
            SemanticRoute(
                name="math", model="y", threshold=0.3, utterances=["solve this equation", "prove the theorem"]
            ),
        ]
    )


def test_index_matches_by_closest_utterance(index):
    from routers.encoder import Encoder

    emb = Encoder.default().embed(
        [
            "please write a python function that reverses a string",
            "solve the equation 2x + 3 = 9",
            "what a lovely sunny day",
        ]
    )
    s = index.scores(emb)
    assert s.shape == (3, 2)
    assert s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]
    assert index.match(emb[0]).route.name == "code"
    assert index.match(emb[1]).route.name == "math"
    assert index.match(emb[2]) is None
    # the max cosine over each route's utterances (int8 dynamic quantisation: batch-dependent to ~1e-2)
    direct = Encoder.default().embed(["write a python function", "fix this bug in my javascript"]) @ emb[0]
    assert index.scores(emb[0])[0] == pytest.approx(direct.max(), abs=0.02)


def test_tune_finds_a_separating_threshold():
    scores = np.array([[0.9, 0.1], [0.7, 0.2], [0.3, 0.1], [0.2, 0.8], [0.1, 0.35]])
    labels = np.array([0, 0, -1, 1, -1])
    th = tune(scores, labels, np.array([0.95, 0.95]))
    assert (predict(scores, th) == labels).all()
    assert 0.3 < th[0] < 0.7 and 0.35 < th[1] < 0.8


def test_routes_fit_prints_and_writes(tmp_path):
    cfg = tmp_path / "semantic.yaml"
    original = (ROOT / "config" / "semantic.yaml").read_text()
    cfg.write_text(original.replace("threshold: ", "threshold: 0.9 #", 1))  # a bad first threshold to improve on
    examples = ROOT / "config" / "semantic-examples.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "routes", "fit", str(cfg), "--examples", str(examples), "--write"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()[0]
    before, after = (float(x) for x in head.split("accuracy ")[1].split(" on ")[0].split(" -> "))
    assert after > before and after >= 0.9
    assert "    - name: code" in r.stdout and "threshold: " in r.stdout
    written = load_config(cfg)
    th = {r.name: r.threshold for r in written.policies["domains"].semantic_routes}
    for line in r.stdout.splitlines():
        if line.strip().startswith("- name:"):
            name = line.split(":")[1].strip()
        if line.strip().startswith("threshold:"):
            assert th[name] == pytest.approx(float(line.split(":")[1].split("#")[0]))
    text = cfg.read_text()
    assert (
        text.startswith("# yaml-language-server: $schema=./schema.json") and "# Tune the thresholds" in text
    )  # comments kept


def test_routes_fit_rejects_unknown_route(tmp_path):
    ex = tmp_path / "ex.jsonl"
    ex.write_text('{"text": "hi", "route": "poetry"}\n')
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "routes",
            "fit",
            str(ROOT / "config" / "semantic.yaml"),
            "--examples",
            str(ex),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == 2 and "unknown route 'poetry'" in r.stderr
