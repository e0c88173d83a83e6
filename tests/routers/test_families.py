"""Every family trains on a small real subset, exports ONNX, and matches its training impl."""

import numpy as np
import pytest

from routers.base import RouterScores, load_router
from routers.cascade import AnswerChecker
from routers.data import load_table
from routers.train import table_embeddings, train_router

TOL = 1e-5
FAST = {"mf": {"max_epochs": 8}, "cascade": {"max_epochs": 20}, "cost": {"max_epochs": 20}, "knn": {}}


@pytest.fixture(scope="module")
def mmlu_small(data_dir):
    t = load_table(data_dir / "routellm-mmlu", "routellm")
    idx = np.random.default_rng(0).choice(len(t), 400, replace=False)
    return t.subset(np.sort(idx))


@pytest.fixture(scope="module")
def rb_small(data_dir):
    t = load_table(data_dir / "routerbench", "routerbench")
    idx = np.random.default_rng(0).choice(len(t), 160, replace=False)
    return t.subset(np.sort(idx))


def _parity(out, ref, emb):
    router = load_router(out)
    got: RouterScores = router.score(emb)
    want: RouterScores = ref(emb)
    assert got.quality.shape == (len(emb), len(router.models))
    assert got.quality.dtype == np.float32
    assert np.all((got.quality >= 0) & (got.quality <= 1))
    assert np.abs(got.quality - want.quality).max() <= TOL
    if want.strong_win is not None:
        assert np.abs(got.strong_win - want.strong_win).max() <= TOL
    return router


@pytest.mark.parametrize("kind", ["mf", "cascade", "cost", "knn", "random", "cluster"])
def test_pair_families_parity(kind, mmlu_small, tmp_path):
    emb = table_embeddings(mmlu_small)
    meta, ref = train_router(kind, mmlu_small, tmp_path, holdout=0.2, **FAST.get(kind, {}))
    router = _parity(tmp_path, ref, emb[:64])
    assert meta["strong"] == "gpt-4-1106-preview"
    assert meta["encoder"]["hash"] and meta["training_data"][0]["hash"]
    assert len(meta["calibration"]["strong_win"]) == 101
    assert "apgr" in meta["metrics"]["holdout"]["pair"]
    sc = router.score(emb[:5])
    assert sc.strong_win is not None and sc.strong == "gpt-4-1106-preview"


def test_knn_with_torch_head_prior_parity(mmlu_small, tmp_path):
    emb = table_embeddings(mmlu_small)
    meta, ref = train_router("knn", mmlu_small, tmp_path, prior="heads", prior_weight=0.3, max_epochs=20)
    _parity(tmp_path, ref, emb[:64])
    assert meta["prior"] == "heads" and meta["fit"]["best_epoch"] >= 0
    with pytest.raises(ValueError, match="prior='heads' only"):
        train_router("knn", mmlu_small, tmp_path / "x", max_epochs=20)


def test_soft_target_logistic_is_weighted_bce(mmlu_small):
    """Soft targets enter as weighted positive/negative copies: hard labels give plain
    logistic regression, a NaN target drops the row, and a constant column is bias-only."""
    from sklearn.linear_model import LogisticRegression

    from routers.heads import fit_logistic, predict_heads

    x = table_embeddings(mmlu_small)
    y = mmlu_small.quality[:, :1].copy()
    ((w, b),) = fit_logistic(x, y, C=0.3)[0]
    ref = LogisticRegression(C=0.3, max_iter=3000).fit(x, y[:, 0])
    assert np.abs(w[:, 0] - ref.coef_[0]).max() < 1e-3 and abs(b[0] - ref.intercept_[0]) < 1e-3
    y_nan = np.concatenate([y, np.full((len(y), 1), 0.25)], axis=1)
    y_nan[:50, 0] = np.nan
    layers, info = fit_logistic(x, y_nan, C=0.3)
    ref_nan = LogisticRegression(C=0.3, max_iter=3000).fit(x[50:], y[50:, 0])
    assert np.abs(layers[0][0][:, 0] - ref_nan.coef_[0]).max() < 1e-3
    assert np.allclose(predict_heads(layers, x)[:, 1], 0.25, atol=1e-5) and info["kind"] == "logistic"


@pytest.mark.parametrize("kind", ["cluster", "cost", "knn"])
def test_many_model_families_parity(kind, rb_small, tmp_path):
    emb = table_embeddings(rb_small)
    meta, ref = train_router(kind, rb_small, tmp_path, **FAST.get(kind, {}))
    router = _parity(tmp_path, ref, emb[:64])
    assert len(router.models) == 11
    assert meta["typical_cost_usd"]["gpt-4-1106-preview"] > 0
    assert meta["typical_output_tokens"]
    assert "aiq" in meta["metrics"]["train"]["many"]


def test_mf_any_pair_win_prob(rb_small, tmp_path):
    emb = table_embeddings(rb_small)
    meta, ref = train_router("mf", rb_small, tmp_path, max_epochs=5)
    router = _parity(tmp_path, ref, emb[:32])
    assert len(router.models) == 11
    a, b = "gpt-4-1106-preview", "mistralai/mistral-7b-chat"
    p = router.win_prob(emb[:20], a, b)
    s = ref.scores(emb[:20])
    want = 1 / (1 + np.exp(-(s[:, router.models.index(a)] - s[:, router.models.index(b)])))
    assert np.abs(p - want).max() <= TOL


def test_answer_checker_parity_and_api(rb_small, tmp_path, encoder):
    few = rb_small.subset(np.arange(100)).select_models(
        ["gpt-3.5-turbo-1106", "mistralai/mistral-7b-chat", "claude-v2"]
    )
    emb = table_embeddings(few)
    meta, ref = train_router("answer-check", few, tmp_path, max_epochs=20)
    chk = AnswerChecker.load(tmp_path)
    m = "gpt-3.5-turbo-1106"
    answers = few.responses[m][:32]
    from routers.embed_cache import embed_texts

    a_emb = embed_texts(answers)
    got = chk.check(emb[:32], a_emb)
    assert got.shape == (32,) and np.abs(got - ref(emb[:32], a_emb)).max() <= TOL
    assert 0 <= meta["metrics"]["val_auc"] <= 1
    via_text = chk.check_texts(few.prompts[:2], answers[:2], encoder)  # serving path: single rows
    direct = chk.check(encoder.embed(few.prompts[:2]), encoder.embed(answers[:2]))
    assert np.abs(via_text - direct).max() <= TOL
    assert np.abs(via_text - got[:2]).max() < 0.05  # bulk vs single-row embeddings
    assert 0 <= chk.threshold <= 1 and meta["answers"] > 250
    t = chk.threshold_for_escalation(0.3)
    assert 0 < t < 1


def test_pair_scores_track_the_expected_gap_when_ties_count_half(mmlu_small, tmp_path):
    """MF (ties half) and the Hybrid-LLM soft label both predict 0.5 + E[q_s - q_w] / 2 on
    average; RouteLLM's tie-dropping MF heads for P(strong wins | no tie), far above it."""
    emb = table_embeddings(mmlu_small)
    s, w = (
        mmlu_small.models.index("gpt-4-1106-preview"),
        mmlu_small.models.index("mistralai/Mixtral-8x7B-Instruct-v0.1"),
    )
    expected = 0.5 + 0.5 * float(np.mean(mmlu_small.quality[:, s] - mmlu_small.quality[:, w]))
    no_tie = mmlu_small.quality[:, s] != mmlu_small.quality[:, w]
    p_win_no_tie = float(np.mean(mmlu_small.quality[no_tie, s]))
    got = {}
    for name, kind, opts in [
        ("half", "mf", {"ties": "half"}),
        ("drop", "mf", {"ties": "drop"}),
        ("soft", "cascade", {}),
    ]:
        train_router(kind, mmlu_small, tmp_path / name, max_epochs=60, **opts)
        got[name] = float(np.mean(load_router(tmp_path / name).score(emb).strong_win))
    assert abs(got["half"] - expected) < 0.05 and abs(got["soft"] - expected) < 0.05
    assert expected + 0.05 < got["drop"] < p_win_no_tie + 0.05  # pulled towards P(win | no tie)
