"""Adaptation of a deployed router (routers.adapt) and ``learn-curve`` on real MMLU cuts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from routers.adapt import (
    ALL,
    FITTED_FILE,
    KEEP,
    ON_TOP,
    REFIT,
    AdaptedRouter,
    Basis,
    Judged,
    Reg,
    _solve,
    adapt,
    fit_head,
    fit_linear,
    fit_refit,
    prior_quality,
    share_aliases,
)
from routers.base import load_router
from routers.cli import register
from routers.data import load_table, repo_root
from routers.evaluate import evaluate_scores
from routers.learncurve import learn_curve, ridge_curve, stream_eval_split
from routers.train import table_embeddings, train_router

BASE_SUBJECTS = ("anatomy", "astronomy", "marketing", "virology", "high_school_biology")
TARGET_SUBJECTS = ("elementary_mathematics", "high_school_statistics")


@pytest.fixture(scope="module")
def dirs(data_dir, tmp_path_factory):
    src = data_dir / "routellm-mmlu"
    base_d, target_d = tmp_path_factory.mktemp("base-data"), tmp_path_factory.mktemp("target-data")
    for s in BASE_SUBJECTS:
        shutil.copy(src / f"mmlu_{s}.csv", base_d)
    for s in TARGET_SUBJECTS:
        shutil.copy(src / f"mmlu_{s}.csv", target_d)
    return base_d, target_d


@pytest.fixture(scope="module")
def base_router(dirs, tmp_path_factory):
    """A kNN pair router trained without the math subjects (the shipped recipe)."""
    out = tmp_path_factory.mktemp("art") / "knn-nomath"
    train_router("knn", load_table(dirs[0], "routellm"), out, seed=0)
    return out


@pytest.fixture(scope="module")
def target(dirs):
    t = load_table(dirs[1], "routellm")
    return t, table_embeddings(t)


def _judged(t, emb, idx) -> Judged:
    return Judged(emb[idx], list(t.models), t.quality[idx].astype(float))


def test_keep_is_the_deployed_router(base_router, target, tmp_path):
    t, emb = target
    meta = adapt(base_router, _judged(t, emb, np.arange(60)), tmp_path / "a", grid=[KEEP])
    assert meta["kind"] == "adapted" and meta["adaptation"]["chosen"] == "keep"
    a, b = load_router(tmp_path / "a"), load_router(base_router)
    assert isinstance(a, AdaptedRouter)
    np.testing.assert_allclose(a.score(emb[:50]).quality, b.score(emb[:50]).quality, atol=1e-4)


def test_fitted_head_is_what_serves_and_adapting_twice_stays_flat(base_router, target, tmp_path):
    t, emb = target
    reg = Reg(3.0)
    adapt(base_router, _judged(t, emb, np.arange(0, 150)), tmp_path / "one", grid=[reg], dims=16)
    one = load_router(tmp_path / "one")
    second = _judged(t, emb, np.arange(150, 300))
    dom = emb[300:500]
    adapt(tmp_path / "one", second, tmp_path / "two", grid=[reg], domain_emb=dom, dims=16)
    two = load_router(tmp_path / "two")
    assert not (tmp_path / "two" / "base" / "base").exists()  # composed, not nested
    assert load_router(tmp_path / "two" / "base").meta["kind"] == "knn"
    # the served logits are exactly the second head on top of the first adapted router
    basis = Basis.fit(np.vstack([second.emb, dom]), 16)
    p = prior_quality(one, second.emb, list(t.models))
    head = fit_head(p, basis(second.emb), second, reg)
    x = emb[500:560]
    inside = ((one.raw(x) >= 0) & (one.raw(x) <= 1)).all(axis=1)  # the first router did not clip
    want = head.predict(prior_quality(one, x, list(t.models)), basis(x))
    assert inside.sum() > 40
    np.testing.assert_allclose(two.raw(x)[inside], want[inside], atol=2e-3)
    assert two.meta["strong"] == "gpt-4-1106-preview"
    assert two.meta["calibration"]["strong_win"]


def test_unrelated_labels_barely_move_the_router(base_router, target, tmp_path):
    """Labels shuffled across prompts carry no prompt information. Here the chosen candidate's
    cross-validated error is level with keeping the router (they differ by about 1e-5, so which
    of the two wins depends on the platform's floating point), and either way the router's
    ranking of other prompts hardly changes. (On other shuffles a blend can win by 1-6 % of the
    error and re-rank: the deployed router's errors on a new domain are large, and damping them
    towards the labels' means pays in squared error; docs/learning.md.)"""
    from scipy.stats import spearmanr

    t, emb = target
    rng = np.random.default_rng(3)
    idx = np.arange(200)
    j = Judged(emb[idx], list(t.models), t.quality[rng.permutation(idx)].astype(float))
    meta = adapt(base_router, j, tmp_path / "a")
    cv = {row["reg"]: row["cv_error"] for row in meta["adaptation"]["cv"]}
    assert cv[meta["adaptation"]["chosen"]] >= 0.999 * cv["keep"]

    def gap(router) -> np.ndarray:  # the pair's predicted quality gap on the other target prompts
        sc = router.score(emb[200:])
        return sc.quality[:, sc.models.index(meta["strong"])] - sc.quality[:, sc.models.index(meta["weak"])]

    rho = spearmanr(gap(load_router(base_router)), gap(load_router(tmp_path / "a")))[0]
    assert rho > 0.85, rho


def test_learn_curve_shape_budget0_and_no_loss(base_router, dirs, target):
    t, emb = target
    res = learn_curve(base_router, dirs[1], "routellm", [0, 100, 280], seed=0)
    assert set(res) == {"metric", "budgets", "values", "baseline_random", "rows"}
    assert res["metric"] == "apgr" and res["baseline_random"] == 0.5
    stream, ev = stream_eval_split(len(t), 0)
    assert res["rows"] == {"stream": len(stream), "eval": len(ev)}
    shipped = load_router(base_router)
    want = evaluate_scores(t.subset(ev), shipped.score(emb[ev]), shipped.meta)["pair"]["apgr"]
    assert res["values"][0] == pytest.approx(want)
    assert min(res["values"][1:]) >= res["values"][0] - 0.02


def test_shipped_mmlu_router_learns_arc_from_routerbench_rows(data_dir):
    """The shipped kNN pair router (GPT-4-1106 vs Mixtral, trained on MMLU only) is near random on
    RouterBench's ARC-Challenge file, read as RouterBench writes it (Mixtral is
    ``mistralai/mixtral-8x7b-chat`` there): learn-curve still scores the router's pair by APGR,
    and 400 judged ARC prompts lift it (measured: 0.504 -> 0.604 with seed 0)."""
    from routers.data import repo_root

    arc = data_dir / "routerbench" / "arc_challenge_train.csv"
    res = learn_curve(repo_root() / "routers/artifacts/knn-mmlu", arc, "routerbench", [0, 400], seed=0)
    assert res["metric"] == "apgr" and res["baseline_random"] == 0.5
    assert res["values"][0] < 0.55
    assert res["values"][1] > res["values"][0] + 0.04


def test_labels_under_another_data_sets_name_adapt_the_routers_model(data_dir, tmp_path):
    """RouterBench's ``mistralai/mixtral-8x7b-chat`` labels correct the kNN router's
    ``mistralai/Mixtral-8x7B-Instruct-v0.1`` column, not a second, unrouted copy of Mixtral."""
    from routers.data import repo_root

    t = load_table(data_dir / "routerbench" / "arc_challenge_train.csv", "routerbench")
    t = t.subset(np.arange(120))
    emb = table_embeddings(t)
    base = repo_root() / "routers/artifacts/knn-mmlu"
    meta = adapt(base, _judged(t, emb, np.arange(120)), tmp_path / "a", grid=[Reg(3.0)], dims=8)
    assert "mistralai/Mixtral-8x7B-Instruct-v0.1" in meta["models"]
    assert "mistralai/mixtral-8x7b-chat" not in meta["models"] and len(meta["models"]) == len(t.models)
    before, after = load_router(base).score(emb), load_router(tmp_path / "a").score(emb)
    col = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    moved = after.quality[:, after.models.index(col)] - before.quality[:, before.models.index(col)]
    assert np.abs(moved).max() > 1e-3


def test_learn_curve_cli(base_router, dirs, tmp_path):
    app = typer.Typer()
    register(app)
    out, png = tmp_path / "curve.json", tmp_path / "curve.png"
    args = ["learn-curve", "--router", str(base_router), "--data", str(dirs[1]), "--format", "routellm"]
    r = CliRunner().invoke(app, [*args, "--budgets", "0,50", "--seed", "1", "--json", str(out), "--plot", str(png)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["budgets"] == [0, 50] and len(res["values"]) == 2
    assert png.stat().st_size > 1000
    big = CliRunner().invoke(app, [*args, "--budgets", "0,100000", "--json", str(out)])
    assert big.exit_code == 0 and "exceeds the stream half" in big.output
    res = json.loads(out.read_text())
    half = res["rows"]["stream"]
    assert res["budgets"] == [0, 100000] and res["judged"] == [0, half] and len(res["values"]) == 2
    full = learn_curve(base_router, dirs[1], "routellm", [half], seed=0)
    assert res["values"][1] == pytest.approx(full["values"][0]) and "judged" not in full
    bad = CliRunner().invoke(app, [*args, "--budgets", "0,-5", "--json", str(out)])
    assert bad.exit_code == 2 and "budgets must be >= 0" in bad.output
    none = CliRunner().invoke(app, [*args, "--budgets", ",", "--json", str(out)])
    assert none.exit_code == 2 and "needs at least one budget" in none.output
    nested = tmp_path / "new" / "dir" / "curve.json"  # --json into a folder not made yet
    assert CliRunner().invoke(app, [*args, "--budgets", "0", "--json", str(nested)]).exit_code == 0
    assert json.loads(nested.read_text())["budgets"] == [0]


@pytest.mark.parametrize("base", ["knn", "prior"])
def test_blend_serves_what_was_fitted(base, base_router, target, tmp_path):
    """The blend candidate (base router mixed with a ridge refit of the labels alone) is written
    as the same linear head: the served, unclipped quality is the training-side prediction. The
    universal prior (22 model names, 2 of them judged) keeps its other models unchanged."""
    from routers.data import repo_root

    t, emb = target
    base_dir = base_router if base == "knn" else repo_root() / "routers/artifacts/prior"
    reg = Reg(3.0, blend=0.5)
    judged = _judged(t, emb, np.arange(0, 200))
    meta = adapt(base_dir, judged, tmp_path / "a", grid=[reg])
    assert meta["adaptation"]["chosen"] == "blend=0.5,ridge=3"
    served, shipped = load_router(tmp_path / "a"), load_router(base_dir)
    models = served.models
    cols = [models.index(m) for m in t.models]
    assert np.allclose(np.asarray(meta["alpha"])[cols], 0.5)
    wide = Judged(judged.emb, models, np.full((len(judged), len(models)), np.nan))
    wide.scores[:, cols] = judged.scores
    p = prior_quality(shipped, judged.emb, models)
    aliases = shipped.meta.get("aliases") or {}
    lin = share_aliases(fit_linear(p, Basis.fit(judged.emb, 0), wide, reg), models, aliases, ~np.isnan(wide.scores[0]))
    x = emb[200:260]
    want = lin.predict(prior_quality(shipped, x, models), x)
    np.testing.assert_allclose(served.raw(x), want, atol=2e-3)
    judged_models = {aliases.get(m, m) for m in t.models}
    others = [j for j, m in enumerate(models) if aliases.get(m, m) not in judged_models]
    assert len(others) == len(models) - (2 if base == "knn" else 4)
    np.testing.assert_allclose(served.raw(x)[:, others], prior_quality(shipped, x, models)[:, others], atol=1e-5)


def test_refit_is_one_ridge_per_model(target):
    """With per-model scores only, the refit is sklearn's ridge per model (intercept unpenalised)."""
    from sklearn.linear_model import Ridge

    t, emb = target
    judged = _judged(t, emb, np.arange(150))
    w, b, covered = fit_refit(judged.emb, judged, 3.0)
    assert covered.all()
    x = emb[150:200].astype(np.float64)
    for j in range(len(t.models)):
        ref = Ridge(alpha=3.0).fit(judged.emb, judged.scores[:, j])
        np.testing.assert_allclose(x @ w[:, j] + b[j], ref.predict(x), atol=1e-3)


def test_refit_from_judge_pairs_alone(target):
    """Judge preferences only (no per-model scores): the pairs are solved jointly, in the dual
    form when there are fewer equations than weights, and it is the same least-squares answer."""
    t, emb = target
    js, jw = t.models.index("gpt-4-1106-preview"), t.models.index("mistralai/Mixtral-8x7B-Instruct-v0.1")
    idx = np.arange(120)
    y = t.quality[idx]
    pref = np.where(y[:, js] > y[:, jw], 1.0, np.where(y[:, js] < y[:, jw], 0.0, 0.5))
    pairs = np.stack([np.arange(len(idx)), np.full(len(idx), js), np.full(len(idx), jw), pref], 1)
    judged = Judged(emb[idx], list(t.models), np.full(y.shape, np.nan), pairs.astype(float))
    w, b, covered = fit_refit(judged.emb, judged, 3.0)
    assert covered[[js, jw]].all()
    gain = emb[idx].astype(np.float64) @ (w[:, js] - w[:, jw]) + b[js] - b[jw]
    assert np.corrcoef(gain, 2 * pref - 1)[0, 1] > 0.5  # fits its labels
    rng = np.random.default_rng(0)
    g, r, pen = rng.normal(size=(40, 90)), rng.normal(size=40), rng.uniform(0.5, 2.0, 90)
    np.testing.assert_allclose(_solve(g, r, pen), np.linalg.solve(g.T @ g + np.diag(pen), g.T @ r), atol=1e-8)


def test_labels_under_an_alias_adapt_the_prior_pair(target, tmp_path):
    """Judged labels that name Mixtral as RouterBench does adapt the universal prior's default
    pair (whose weak model is RouteLLM's name for it): every declared name serves one correction."""
    from routers.data import repo_root

    t, emb = target
    base_dir = repo_root() / "routers/artifacts/prior"
    names = ["mistralai/mixtral-8x7b-chat" if m.startswith("mistralai/Mixtral") else m for m in t.models]
    judged = Judged(emb[:200], names, t.quality[:200].astype(float))
    meta = adapt(base_dir, judged, tmp_path / "a", grid=[Reg(3.0, blend=0.5)])
    served, shipped = load_router(tmp_path / "a"), load_router(base_dir)
    assert meta["aliases"]["mistralai/mixtral-8x7b-chat"] == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    x = emb[200:260]
    raw = served.raw(x)
    cols = [served.models.index(m) for m in ("mistralai/mixtral-8x7b-chat", "mistralai/Mixtral-8x7B-Instruct-v0.1")]
    np.testing.assert_allclose(raw[:, cols[0]], raw[:, cols[1]], atol=1e-6)
    assert served.strong == shipped.strong and served.weak == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert np.abs(served.score(x).strong_win - shipped.score(x).strong_win).max() > 0.01


def test_ridge_curve_is_a_plain_refit_on_the_same_split(dirs, target):
    """The report's naive baseline: per-model ridge on the first k stream rows, no router."""
    from routers.evaluate import pair_metrics
    from routers.lodo import fit_ridge

    t, emb = target
    pair = ("gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1")
    vals = ridge_curve(dirs[1], "routellm", [0, 120], seed=2, pair=pair)
    stream, ev = stream_eval_split(len(t), 2)
    q = fit_ridge(emb[stream[:120]], t.quality[stream[:120]])(emb[ev]).astype(np.float64)
    js, jw = (t.models.index(m) for m in pair)
    want = pair_metrics(0.5 + 0.5 * (q[:, js] - q[:, jw]), t.quality[ev, js], t.quality[ev, jw])["apgr"]
    assert vals[0] == 0.5 and vals[1] == pytest.approx(want, abs=1e-3)


def test_learn_curve_scores_a_fast_tier_router_on_its_own_encoder(dirs, target):
    """``prior-fast`` pins the static table: learn-curve embeds with it, not MiniLM (budget 0 is
    the shipped router on the evaluation half's static-table embeddings)."""
    from routers.data import repo_root
    from routers.encoders.static import StaticEncoder
    from routers.learncurve import encoder_of

    art = repo_root() / "routers/artifacts/prior-fast"
    shipped = load_router(art)
    enc = encoder_of(shipped.meta)
    assert isinstance(enc, StaticEncoder)
    assert encoder_of(load_router(repo_root() / "routers/artifacts/prior").meta) is None  # both tiers: MiniLM
    t, _ = target
    res = learn_curve(art, dirs[1], "routellm", [0, 60], seed=0)
    _, ev = stream_eval_split(len(t), 0)
    emb = table_embeddings(t, enc)
    want = evaluate_scores(t.subset(ev), shipped.score(emb[ev]), shipped.meta)["pair"]["apgr"]
    assert res["values"][0] == pytest.approx(want)


def test_learn_curve_reads_routellm_eval_files_with_answer_columns(data_dir, tmp_path):
    """RouteLLM's own GSM8K eval file adds ``<model>_response`` columns; learn-curve scores the
    shipped GPT-4/Mixtral router on such a file by APGR of its pair."""
    from routers.data import repo_root
    from tests.support.tables import routellm_with_answers

    routellm_with_answers(data_dir, tmp_path / "gsm_like.csv", rows=160)
    res = learn_curve(repo_root() / "routers/artifacts/knn-mmlu", tmp_path / "gsm_like.csv", "routellm", [0, 60])
    assert res["metric"] == "apgr" and res["rows"] == {"stream": 80, "eval": 80}
    assert all(np.isfinite(res["values"]))


def _with_ids(j: Judged, idx) -> Judged:
    return Judged(j.emb, j.models, j.scores, j.pairs, [f"req-{i}" for i in idx])


def test_retraining_on_the_same_rows_refits_from_the_original_base(base_router, target, tmp_path):
    """Retrain reads every labelled request again. When the rows the deployed adapted router
    learnt from all come back, it is refitted from its original base with every row: the same
    router one adaptation on all of them gives (correcting it again would fit its own in-sample
    residuals and learn little from the new rows)."""
    t, emb = target
    first, both = np.arange(0, 120), np.arange(0, 240)
    dom = emb[240:400]
    adapt(base_router, _with_ids(_judged(t, emb, first), first), tmp_path / "one", domain_emb=dom, seed=1)
    ids_one = json.loads((tmp_path / "one" / FITTED_FILE).read_text())["ids"]
    assert len(ids_one) == 120
    meta = adapt(tmp_path / "one", _with_ids(_judged(t, emb, both), both), tmp_path / "two", domain_emb=dom, seed=1)
    adapt(base_router, _with_ids(_judged(t, emb, both), both), tmp_path / "once", domain_emb=dom, seed=1)
    assert meta["adaptation"]["rows"] == {"mode": REFIT, "judged": 240}
    assert load_router(tmp_path / "two" / "base").meta["kind"] == "knn"
    x = emb[400:460]
    np.testing.assert_allclose(load_router(tmp_path / "two").raw(x), load_router(tmp_path / "once").raw(x), atol=1e-6)
    assert len(json.loads((tmp_path / "two" / FITTED_FILE).read_text())["ids"]) == 240


def test_retraining_without_the_old_rows_learns_only_the_new_ones(base_router, target, tmp_path):
    """A ``--since`` window drops some rows the deployed router learnt from: it is corrected
    with the rows it has not seen, on top, and remembers both sets; with nothing new it stays."""
    t, emb = target
    first, later = np.arange(0, 120), np.arange(60, 240)
    dom = emb[240:400]
    adapt(base_router, _with_ids(_judged(t, emb, first), first), tmp_path / "one", domain_emb=dom)
    meta = adapt(tmp_path / "one", _with_ids(_judged(t, emb, later), later), tmp_path / "two", domain_emb=dom)
    assert meta["adaptation"]["rows"] == {"mode": ON_TOP, "judged": 180, "new": 120}
    assert meta["adaptation"]["judged_rows"] == 120  # rows 120-239 only
    assert len(json.loads((tmp_path / "two" / FITTED_FILE).read_text())["ids"]) == 240
    assert not (tmp_path / "two" / "base" / "base").exists()
    again = np.arange(60, 120)  # all seen before, some of the first rows missing: nothing new to learn
    meta = adapt(tmp_path / "two", _with_ids(_judged(t, emb, again), again), tmp_path / "three", domain_emb=dom)
    assert meta["adaptation"]["rows"]["new"] == 0 and meta["adaptation"]["chosen"] == "keep"
    x = emb[400:460]
    np.testing.assert_allclose(load_router(tmp_path / "three").raw(x), load_router(tmp_path / "two").raw(x), atol=1e-5)


def test_rows_without_ids_correct_the_deployed_router_with_every_row(base_router, target, tmp_path):
    t, emb = target
    adapt(base_router, _judged(t, emb, np.arange(120)), tmp_path / "one")
    assert not (tmp_path / "one" / FITTED_FILE).exists()
    meta = adapt(tmp_path / "one", _judged(t, emb, np.arange(240)), tmp_path / "two")
    assert meta["adaptation"]["rows"] == {"mode": ALL, "judged": 240}


@pytest.mark.parametrize("kind", ["mf-mmlu", "cascade-mmlu"])
def test_keep_decides_as_a_pair_router_whose_strong_win_is_its_own(kind, target, tmp_path):
    """Matrix factorisation and the Hybrid-LLM cascade decide by a ``strong_win`` that their
    per-model quality does not rank the same way: the adaptation starts from that decision
    score, so "keep" routes exactly as the shipped router (before: MMLU math APGR 1.00 -> 0.95
    for mf, and a shrunk head took the cascade from 0.86 to 0.53)."""
    t, emb = target
    base_dir = repo_root() / f"routers/artifacts/{kind}"
    adapt(base_dir, _judged(t, emb, np.arange(60)), tmp_path / "keep", grid=[KEEP])
    base, kept = load_router(base_dir), load_router(tmp_path / "keep")
    x = emb[100:200]
    np.testing.assert_allclose(kept.score(x).strong_win, base.score(x).strong_win, atol=1e-5)
    p = prior_quality(base, x, list(base.models))
    s, w = base.models.index(base.meta["strong"]), base.models.index(base.meta["weak"])
    np.testing.assert_allclose(p[:, s] - p[:, w], 2 * base.score(x).strong_win - 1, atol=1e-5)


def test_a_shrunk_head_keeps_the_cascades_decision(target, tmp_path):
    """The cascade's quality is relative (strong = 1): a strongly shrunk correction fitted to
    absolute outcomes must stay close to the router it corrects, not undo its decision."""
    t, emb = target
    base_dir = repo_root() / "routers/artifacts/cascade-mmlu"
    stream, ev = stream_eval_split(len(t), 0)
    j = _judged(t, emb, stream[:100])
    adapt(base_dir, j, tmp_path / "a", grid=[Reg(30.0)], domain_emb=emb[stream])
    base, adapted = load_router(base_dir), load_router(tmp_path / "a")
    before = evaluate_scores(t.subset(ev), base.score(emb[ev]), base.meta)["pair"]["apgr"]
    after = evaluate_scores(t.subset(ev), adapted.score(emb[ev]), adapted.meta)["pair"]["apgr"]
    assert after >= before - 0.05


def test_learn_curve_on_the_answer_checker_says_what_it_is(target, tmp_path):
    t, _ = target
    with pytest.raises(ValueError, match=r"answer checker .*cascade\.checker"):
        learn_curve(repo_root() / "routers/artifacts/answer-check", tmp_path, "routellm", [0])


def test_a_version_1_artifact_serves_as_it_did(target, tmp_path):
    """Adapted artifacts written before the pair rule (no ``version`` 2) keep their old scoring:
    the base's plain quality, and ``strong_win`` from the clipped adapted quality."""
    from routers.runtime import pair_strong_win, read_meta, write_meta

    t, emb = target
    base_dir = repo_root() / "routers/artifacts/mf-mmlu"
    adapt(base_dir, _judged(t, emb, np.arange(80)), tmp_path / "a", grid=[Reg(3.0)])
    meta = read_meta(tmp_path / "a")
    assert meta["version"] == 2
    write_meta(tmp_path / "a", {**meta, "version": 1})
    old = load_router(tmp_path / "a")
    x = emb[100:150]
    base = load_router(base_dir)
    q = np.asarray(base.score(x).quality, np.float64)
    raw = old.alpha[None, :] * q + old.run(x)["delta"]
    np.testing.assert_allclose(old.raw(x), raw, atol=1e-5)
    s, w = old.models.index(old.strong), old.models.index(old.weak)
    np.testing.assert_allclose(old.score(x).strong_win, pair_strong_win(np.clip(raw, 0, 1), s, w), atol=1e-5)
