"""The universal prior: trained on a mixed cut of all three shared data sets, served from ONNX."""

import json

import numpy as np
import pytest

from routers.base import load_router
from routers.data import load_table, merge_tables, reference_mix
from routers.identities import canonical
from routers.train import table_embeddings, train_router

TOL = 1e-5
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"


def _cut(t, n, seed=0):
    return t.subset(np.sort(np.random.default_rng(seed).choice(len(t), n, replace=False)))


@pytest.fixture(scope="module")
def mixed_small(data_dir):
    mmlu = _cut(load_table(data_dir / "routellm-mmlu", "routellm"), 400)
    rb = _cut(load_table(data_dir / "routerbench", "routerbench"), 160)
    llm = _cut(load_table(data_dir / "llmrouter" / "train.json", "llmrouter"), 200)
    return merge_tables([mmlu, rb, llm])


@pytest.fixture(scope="module")
def prior_art(mixed_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("prior") / "prior"
    meta, ref = train_router("prior", mixed_small, out, epochs=4, holdout=0.2, split="row")
    return out, meta, ref


def test_merge_ties_shared_models_by_identity(mixed_small):
    assert MIXTRAL in mixed_small.models and "mistralai/mixtral-8x7b-chat" not in mixed_small.models
    j = mixed_small.models.index(MIXTRAL)
    by_source = {
        s: np.isfinite(mixed_small.quality[[g.startswith(s) for g in mixed_small.groups], j]).any()
        for s in ("routellm", "routerbench", "llmrouter")
    }
    assert by_source == {"routellm": True, "routerbench": True, "llmrouter": False}  # LLMRouter has no Mixtral outcome
    assert len(mixed_small.models) == 2 + 9 + 9  # MMLU's pair is inside RouterBench's 11
    assert canonical("mistralai/mixtral-8x7b-chat") == MIXTRAL and canonical(GPT4) == GPT4
    assert [s["format"] for s in mixed_small.extra["sources"]] == ["routellm", "routerbench", "llmrouter"]


def test_mixed_format_reads_the_whole_shared_folder(data_dir):
    t = load_table(data_dir, "mixed")
    assert {s["format"] for s in t.extra["sources"]} == {"routellm", "routerbench", "llmrouter"}
    assert len(t) == sum(s["rows"] for s in t.extra["sources"])


def test_onnx_parity_with_training(prior_art, mixed_small):
    out, meta, ref = prior_art
    emb = table_embeddings(mixed_small)[:64]
    router = load_router(out)
    got, want = router.score(emb), ref(emb)
    assert router.kind == "prior" and got.models == want.models
    assert np.abs(got.quality - want.quality).max() <= TOL
    assert np.abs(got.strong_win - want.strong_win).max() <= TOL
    assert (got.strong, got.weak) == (GPT4, MIXTRAL)


def test_aliases_score_as_their_model(prior_art, mixed_small):
    out, meta, _ = prior_art
    router = load_router(out)
    sc = router.score(table_embeddings(mixed_small)[:8])
    a, c = sc.models.index("mistralai/mixtral-8x7b-chat"), sc.models.index(MIXTRAL)
    assert np.array_equal(sc.quality[:, a], sc.quality[:, c])
    assert meta["aliases"]["mixtral-8x7b-instruct-v0.1"] == MIXTRAL
    assert meta["typical_cost_usd"]["mistralai/mixtral-8x7b-chat"] == meta["typical_cost_usd"][MIXTRAL] > 0


def test_pair_metrics_find_the_pair_under_the_data_sets_own_names(data_dir):
    """RouterBench's rows call the shipped prior's weak model ``mistralai/mixtral-8x7b-chat``:
    ``eval`` and ``learn-curve`` still score the router's own pair (APGR), not only AIQ."""
    from routers.data import repo_root
    from routers.evaluate import evaluate_scores

    router = load_router(repo_root() / "routers/artifacts/prior")
    table = _cut(load_table(data_dir / "routerbench" / "arc_challenge_train.csv", "routerbench"), 200)
    assert MIXTRAL not in table.models
    res = evaluate_scores(table, router.score(table_embeddings(table)), router.meta)
    assert (res["pair"]["strong"], res["pair"]["weak"]) == (GPT4, "mistralai/mixtral-8x7b-chat")
    assert res["pair"]["apgr"] > 0.55 and "many" in res


def test_meta_records_sources_mix_and_holdout_by_source(prior_art):
    _, meta, _ = prior_art
    assert [d["format"] for d in meta["training_data"]] == ["routellm", "routerbench", "llmrouter"]
    assert meta["reference_mix"]["per_source"].keys() == {"routellm", "routerbench", "llmrouter"}
    assert len(meta["calibration"]["strong_win"]) == 101
    by = meta["metrics"]["holdout"]["by_source"]
    assert "apgr" in by["routellm"]["pair"] and by["llmrouter"]["many"]["models"] == 9
    assert meta["training_sketch"]["hashes"]


def test_reference_mix_caps_each_source(mixed_small):
    idx = reference_mix(mixed_small, per_source=100)
    src = [mixed_small.groups[i].split(":")[0] for i in idx]
    assert {s: src.count(s) for s in set(src)} == {"routellm": 100, "routerbench": 100, "llmrouter": 100}


def test_profile_places_a_new_model_without_touching_the_graph(prior_art, mixed_small, tmp_path):
    import hashlib
    import shutil

    from routers.prior import profile

    out, _, _ = prior_art
    art = tmp_path / "p"
    shutil.copytree(out, art)
    onnx = hashlib.sha256((art / "router.onnx").read_bytes()).hexdigest()
    emb = table_embeddings(mixed_small)
    j = mixed_small.models.index(GPT4)
    rows = np.flatnonzero(np.isfinite(mixed_small.quality[:, j]))[:120]
    meta = profile(art, "my-gpt4", emb[rows], mixed_small.quality[rows, j], cost_usd=0.01)
    assert hashlib.sha256((art / "router.onnx").read_bytes()).hexdigest() == onnx
    assert "my-gpt4" in meta["models"] and meta["profiled"]["my-gpt4"]["rows"] == 120
    r = load_router(art)
    sc = r.score(emb[rows])
    mean_new = sc.quality[:, sc.models.index("my-gpt4")].mean()
    truth = np.nanmean(mixed_small.quality[rows, j])
    assert abs(mean_new - truth) < 0.1  # the profiled ability reproduces its observed accuracy
    with pytest.raises(ValueError, match="at least 2"):
        profile(art, "x", emb[:1], np.array([1.0]))


def test_prior_options_are_checked(mixed_small, tmp_path):
    with pytest.raises(ValueError, match="balance"):
        train_router("prior", mixed_small, tmp_path, epochs=1, balance="rows")
    with pytest.raises(ValueError, match="both strong and weak"):
        train_router("prior", mixed_small, tmp_path, epochs=1, strong=GPT4)


def test_shipped_prior_routes_the_capital_of_france_to_the_weak_model(encoder):
    """The default policy's calibrated threshold sends an easy factual question to gpt-4o-mini."""
    from pathlib import Path

    import yaml

    from routers.calibration import strong_share_threshold

    root = Path(__file__).resolve().parents[2]
    art = root / "routers" / "artifacts" / "prior"
    if not (art / "router.onnx").exists():
        pytest.skip("prior artifact not built")
    pol = yaml.safe_load((root / "config" / "default.yaml").read_text())["policies"]["default"]
    share = pol["objective"]["target_strong_share"]
    router = load_router(art)
    t = strong_share_threshold(json.loads((art / "router.json").read_text()), share)
    sw = router.score(encoder.embed(["What is the capital of France?"])).strong_win[0]
    assert sw < t


def test_lodo_fold_trains_without_the_held_out_task_and_renders(mixed_small, tmp_path):
    """One leave-one-task-out fold end to end: prior, ridge and knn scored on the held-out rows;
    the rendered block replaces itself in docs and keeps the rest of the file."""
    from routers.lodo import END, START, folds, is_math, render, run_fold, task_of, write_block

    tasks = task_of(mixed_small)
    assert {t.split("/")[0] for t in tasks} == {"routellm", "routerbench", "llmrouter"}
    fold = next(f for f in folds() if f.name == "RouterBench arc-challenge")
    emb = table_embeddings(mixed_small)
    r = run_fold(fold, mixed_small, emb, tasks, tmp_path, epochs=3)
    held = int((tasks == "routerbench/arc-challenge").sum())
    assert r["train_rows"] == len(mixed_small) - held and r["prior"]["rows"] == held
    for k in ("prior", "ridge", "knn"):
        assert 0 <= r[k]["pair"]["apgr"] <= 2 and 0 <= r[k]["many"]["aiq"] <= 1
    assert set(r["prior"]["pair"]["pgr_at"]) == {"0.1", "0.2", "0.3", "0.4", "0.5"}
    doc = tmp_path / "eval.md"
    doc.write_text("# Router evaluation\n\n## Notes\n\n- kept\n")
    write_block(doc, render([r]))
    write_block(doc, render([r]))
    text = doc.read_text()
    assert text.count(START) == 1 and text.count(END) == 1 and text.endswith("- kept\n")
    assert "| RouterBench arc-challenge |" in text and text.index(END) < text.index("## Notes")
    assert is_math("Compute $\\frac{1}{2}$.") and not is_math("Who wrote Hamlet?")


def test_calibrate_the_shipped_prior_for_a_pair_and_for_many_models():
    """The prior calibrates like both kinds: a strong_win threshold for its own pair or any other,
    and a cost_weight for LLMRouter's nine models at a target mean cost."""
    from pathlib import Path

    from routers.calibration import cost_weight_for, strong_share_threshold

    art = Path(__file__).resolve().parents[2] / "routers" / "artifacts" / "prior"
    if not (art / "router.json").exists():
        pytest.skip("prior artifact not built")
    meta = json.loads((art / "router.json").read_text())
    lo, hi = strong_share_threshold(meta, 0.5), strong_share_threshold(meta, 0.1)
    assert 0 <= lo < hi <= 1
    other = strong_share_threshold(meta, 0.3, strong="llama-3.1-nemotron-51b-instruct", weak="gemma-2-9b-it")
    assert 0 <= other <= 1
    nine = next(d["models"] for d in meta["training_data"] if d["format"] == "llmrouter")
    assert len(nine) == 9
    cheap = cost_weight_for(meta, mean_cost=2e-5, models=nine)
    free = cost_weight_for(meta, top_share=1.0, models=nine)
    assert cheap["met"] and cheap["mean_cost"] <= 2e-5 < free["mean_cost"] and free["cost_weight"] == 0.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        cost_weight_for(meta, top_share=1.2, models=nine)


def test_lodo_fold_on_both_tiers_scores_fast_tiered_and_accurate(mixed_small, tmp_path, monkeypatch):
    """Trained on both encoders' embeddings (as shipped): the fold is also scored on MiniLM and by
    the tiered rule, which escalates some prompts and never all, beside the MiniLM ridge baseline."""
    from routers import lodo
    from routers.encoders.static import StaticEncoder
    from routers.lodo import TIERS_END, TIERS_START, folds, render_tiers, run_fold, task_of, write_block

    tasks = task_of(mixed_small)
    fold = next(f for f in folds() if f.name == "RouterBench arc-challenge")
    embs = [table_embeddings(mixed_small), table_embeddings(mixed_small, StaticEncoder.default())]
    r = run_fold(fold, mixed_small, embs, tasks, tmp_path, baselines=False, epochs=3)
    for k in ("prior", "prior_tiered", "prior_accurate", "ridge_accurate", "prior_fast_only"):
        assert 0 <= r[k]["pair"]["apgr"] <= 2, k
    assert 0 <= r["prior_tiered"]["escalated"] <= 1
    monkeypatch.setattr(lodo, "TIER_BAND", 1.01)  # every prompt inside the band: tiered is MiniLM
    r = run_fold(fold, mixed_small, embs, tasks, tmp_path, baselines=False, epochs=3)
    assert r["prior_tiered"]["escalated"] == 1
    assert r["prior_tiered"]["pair"]["apgr"] == r["prior_accurate"]["pair"]["apgr"]
    doc = tmp_path / "eval.md"
    doc.write_text("# Router evaluation\n\n## Notes\n\n- kept\n")
    write_block(doc, render_tiers([r]), TIERS_START, TIERS_END)
    text = doc.read_text()
    assert text.count(TIERS_START) == 1 and "| RouterBench arc-challenge |" in text and text.endswith("- kept\n")
