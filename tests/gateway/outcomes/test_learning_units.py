"""The learning pieces on their own: publish (policy-file rewrite), gate metrics and decision,
--since parsing, the bandit's estimate and exploration, the training table from records."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from gateway.learning import bandit, dataset, gate, publish
from gateway.learning.retrain import parse_since
from gateway.outcomes.record import Labelled, Outcome
from routers.decision import Objective

POLICY = """\
# top comment
server:
  outcomes_path: var/o.sqlite   # keep me
policies:
  other:
    candidates: [a, b]
    router: {path: ../keep/this}
  chat:
    candidates: [a, b]
    router:
      path: routers/artifacts/old   # the router in force
      model_map: {a: A}
"""


def test_set_router_path_rewrites_only_that_scalar(tmp_path):
    f = tmp_path / "policy.yaml"
    f.write_text(POLICY)
    old = publish.set_router_path(f, "chat", "var/routers/chat/v2")
    text = f.read_text()
    assert old == "routers/artifacts/old"
    assert text == POLICY.replace("routers/artifacts/old", '"var/routers/chat/v2"')
    cfg = yaml.safe_load(text)
    assert cfg["policies"]["chat"]["router"]["path"] == "var/routers/chat/v2"
    assert cfg["policies"]["other"]["router"]["path"] == "../keep/this"
    with pytest.raises(ValueError, match=r"no policies\.nope\.router\.path"):
        publish.set_router_path(f, "nope", "x")
    assert publish.relative_to_policy(f, tmp_path / "var" / "routers" / "x") == "var/routers/x"


def test_gate_metrics_and_decision():
    y = np.array([1, 1, 0, 0, 1.0])
    good = gate.prediction_metrics(np.array([0.9, 0.8, 0.2, 0.1, 0.7]), y)
    bad = gate.prediction_metrics(np.array([0.2, 0.3, 0.8, 0.9, 0.4]), y)
    assert good["auc"] == 1.0 and bad["auc"] == 0.0 and good["brier"] < bad["brier"]
    assert gate.decide(bad, good, 0.01)[0] is True
    ok, why = gate.decide(good, bad, 0.01)
    assert ok is False and "< margin 0.01" in why
    assert gate.decide(good, {**good, "brier": good["brier"] - 0.005}, 0.01)[0] is False  # better, not by the margin
    assert gate.auc(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == 0.5


@pytest.mark.parametrize(
    "s,sec", [("7d", 7 * 86400), ("12h", 43200), ("30m", 1800), ("90", 90), ("2w", 14 * 86400), (None, None)]
)
def test_parse_since(s, sec):
    assert parse_since(s) == sec


def test_parse_since_rejects_garbage():
    with pytest.raises(ValueError):
        parse_since("yesterday")


def test_estimate_corrects_router_bias_and_shrinks():
    arm = bandit.Arm(n=10, q=2.0, p=8.0)  # feedback 0.2 where the router said 0.8
    assert bandit.estimate(0.8, arm, k=10) == pytest.approx(0.8 - 0.5 * 0.6)
    assert bandit.estimate(0.7, None, k=10) == 0.7
    assert bandit.parse_stats({"3|m|n": "2", "3|m|q": "1.5", "junk": "1"}) == {(3, "m"): bandit.Arm(n=2, q=1.5)}


def test_pick_exploration_only_when_allowed():
    rng = np.random.default_rng(0)
    kw = dict(
        priors={"a": 0.9, "b": 0.5},
        arms={},
        cluster=0,
        costs={"a": 1.0, "b": 1.0},
        objective=Objective("cost_weight", 0.0),
        k=10,
        rng=rng,
    )
    never = [bandit.pick(["a", "b"], mode="epsilon_greedy", explore=1.0, may_explore=False, **kw) for _ in range(50)]
    assert all(p.ranking[0] == "a" and not p.explored for p in never)
    some = [bandit.pick(["a", "b"], mode="epsilon_greedy", explore=0.5, may_explore=True, **kw) for _ in range(200)]
    share = sum(p.explored for p in some) / len(some)
    assert 0.35 < share < 0.65 and all((p.ranking[0] == "b") == p.explored for p in some)
    assert bandit.assign(np.array([[1, 0], [0, 1]], np.float32), np.array([0.1, 0.9])) == 1
    assert bandit.assign(None, np.array([0.1, 0.9])) == 0


def test_feedback_set_from_records():
    def rec(i, served, emb=True):
        e = np.full(4, i + 1, np.float16).tobytes() if emb else None
        return Labelled(
            outcome=Outcome(request_id=f"r{i}", ts=100 - i, policy="p", served=served, embedding=e, cost_usd=0.1),
            score=i % 2,
        )

    rows = [rec(0, "cheap"), rec(1, "strong"), rec(2, "local"), rec(3, "cheap", emb=False), rec(4, "strong")]
    fs = dataset.build(rows, ["C", "S"], {"cheap": "C", "strong": "S", "local": "local"})
    assert fs.ids == ["r0", "r1", "r4"] and fs.skipped == {
        "no_embedding": 1,
        "other_encoder_tier": 0,
        "model_not_in_router": 1,
    }
    assert np.allclose(np.linalg.norm(fs.emb, axis=1), 1.0)
    tr, te = dataset.time_split(fs, 0.34)
    assert [fs.ids[i] for i in te] == ["r0"]  # newest (largest ts) held back
    filled = dataset.fill_unobserved(fs, np.full((3, 2), 0.5))
    assert filled.tolist() == [[0.0, 0.5], [0.5, 1.0], [0.5, 0.0]]
    table = dataset.to_table(fs, filled, "t")
    assert table.fmt == "outcomes" and table.embeddings.shape == (3, 4) and np.isnan(table.cost[0, 1])


def test_retraining_from_scratch_distils_a_cascades_decision_not_its_relative_quality():
    """The Hybrid-LLM cascade's per-model quality is relative (strong = 1 on every prompt): the
    unobserved cells a from-scratch retrain fills from it carry its decision instead."""
    from gateway.learning.retrain import distilled
    from routers.base import load_router
    from routers.data import load_table, repo_root
    from routers.encoder import Encoder
    from tests.support.paths import DATA

    t = load_table(DATA / "routellm-mmlu" / "mmlu_college_mathematics.csv", "routellm")
    emb = Encoder.default().embed(t.prompts[:20])
    cascade = load_router(repo_root() / "routers/artifacts/cascade-mmlu")
    models = [cascade.meta["weak"], cascade.meta["strong"], "another-model"]
    assert np.allclose(cascade.score(emb).quality[:, cascade.models.index(cascade.meta["strong"])], 1.0)
    got = distilled(cascade, emb, models)
    ok = 1.0 - cascade.score(emb).strong_win
    np.testing.assert_allclose(got[:, 0], ok, atol=1e-6)  # weak: P(cheap is as good)
    np.testing.assert_allclose(got[:, 1], 1.0 - ok, atol=1e-6)  # strong: no longer always 1
    assert got[:, 1].std() > 0.01 and np.allclose(got[:, 2], 0.5)
    knn = load_router(repo_root() / "routers/artifacts/knn-mmlu")  # strong_win from the quality gap: unchanged
    q = knn.score(emb).quality
    np.testing.assert_allclose(distilled(knn, emb, list(knn.models)), q, atol=1e-6)


def test_the_gate_knows_which_routers_score_relative_quality(tmp_path):
    """A cascade's strong = 1 is not a prediction of the feedback score, nor is an adaptation of
    it that kept it unchanged; a fitted head, or "keep" composed on an earlier head, predicts it."""
    from routers.adapt import HEADS, KEEP, Judged, adapt
    from routers.base import load_router
    from routers.data import load_table, repo_root
    from routers.encoder import Encoder
    from tests.support.paths import DATA

    t = load_table(DATA / "routellm-mmlu" / "mmlu_college_mathematics.csv", "routellm")
    emb = Encoder.default().embed(t.prompts)
    base = repo_root() / "routers/artifacts/cascade-mmlu"
    cascade = load_router(base)
    assert gate.relative(cascade, emb) is True
    assert gate.relative(load_router(repo_root() / "routers/artifacts/knn-mmlu"), emb) is False

    def judged(rows: np.ndarray) -> Judged:
        return Judged(emb[rows], list(t.models), t.quality[rows].astype(float), ids=[f"r{i}" for i in rows])

    adapt(base, judged(np.arange(60)), tmp_path / "kept", grid=[KEEP])
    adapt(base, judged(np.arange(60)), tmp_path / "head", grid=[HEADS[-1]])
    adapt(tmp_path / "head", judged(np.arange(60, 90)), tmp_path / "kept-on-head", grid=[KEEP])
    held = emb[90:]
    assert gate.relative(load_router(tmp_path / "kept"), held) is True
    assert gate.relative(load_router(tmp_path / "head"), held) is False
    on_top = load_router(tmp_path / "kept-on-head")
    assert on_top.meta["adaptation"]["chosen"] == "keep" and gate.relative(on_top, held) is False


@pytest.mark.parametrize(
    "line,why",
    [
        ("not json", "Expecting value"),
        ('{"request_id": "r1", "score": 7}', "score: Input should be less than or equal to 1"),
        ('{"score": 1}', "missing 'request_id'"),
        ('["r1", 1]', "a JSON object per line"),
    ],
)
def test_a_bad_judge_line_names_file_and_line(tmp_path, line, why):
    f = tmp_path / "judge.jsonl"
    f.write_text('{"request_id": "r0", "score": 1, "model": "m"}\n\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"judge\.jsonl:3: not a judge item \({why}"):
        dataset.read_judge(f)
    f.write_text('{"request_id": "r0", "score": 1, "model": "m"}\n')
    (item,) = dataset.read_judge(f)
    assert item.source == "judge@m" and item.score == 1.0
    with pytest.raises(ValueError, match=r"judge file .*nope\.jsonl: No such file"):
        dataset.read_judge(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    "change,why",
    [
        ({"holdout": 1.5}, "--holdout is the share"),
        ({"holdout": 0.0}, "--holdout is the share"),
        ({"metric": "auc"}, "--metric must be one of brier, log_loss"),
        ({"family": "answer-check"}, "--family must be one of"),
        ({"candidate": "no/such/router"}, "not a router folder"),
        ({"min_judged": 0}, "--min-judged must be at least 1"),
    ],
)
def test_retrain_options_are_checked_before_any_work(tmp_path, change, why):
    """Each was a traceback, or a gate with the wrong sense (AUC is higher-better), after the
    store was read; the policy file is never opened, so a missing one is not the error."""
    from gateway.learning.retrain import Options, run

    with pytest.raises(ValueError, match=why):
        run(Options(config=tmp_path / "missing.yaml", policy="p", **change))
