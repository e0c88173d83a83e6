"""CLI: train / score / eval / calibrate / profile on small cuts of the real data."""

import csv
import hashlib
import json
import re
import shutil
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from routers.cli import register
from routers.decision import Objective, choose

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    register(a)
    return a


@pytest.fixture(scope="module")
def mmlu_dir(data_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("mmlu")
    for s in ("anatomy", "astronomy", "college_mathematics", "marketing", "virology"):
        shutil.copy(data_dir / f"routellm-mmlu/mmlu_{s}.csv", d)
    return d


@pytest.fixture(scope="module")
def rb_csv(data_dir, tmp_path_factory):
    """A 360-row cut of the RouterBench files (every 5th row), written by this fixture."""
    out = tmp_path_factory.mktemp("rb") / "cut.csv"
    rows, fields = [], None
    for name in ("arc_challenge_train.csv", "mbpp_train.csv", "winograde_train.csv"):
        with open(data_dir / "routerbench" / name, newline="") as f:
            r = csv.DictReader(f)
            fields = fields or r.fieldnames
            rows += [row for i, row in enumerate(r) if i % 5 == 0]
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return out


@pytest.fixture(scope="module")
def cluster_pair(app, mmlu_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("art") / "cluster"
    res = runner.invoke(
        app,
        [
            "train",
            "--router",
            "cluster",
            "--data",
            str(mmlu_dir),
            "--format",
            "routellm",
            "--out",
            str(out),
            "--holdout",
            "0.2",
            "--opt",
            "k=6",
        ],
    )
    assert res.exit_code == 0, res.output
    return out


def test_score_format(app, cluster_pair, mmlu_dir, tmp_path):
    with open(mmlu_dir / "mmlu_anatomy.csv") as f:
        prompts = [r["prompt"] for r in csv.DictReader(f)][:5]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["score", "--router", str(cluster_pair), "--input", str(inp), "--output", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(5)]
    for r in rows:
        assert set(r["scores"]) == {"mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"}
        assert all(0 <= v <= 1 for v in r["scores"].values())
        assert 0 <= r["strong_win"] <= 1
    # the serving path: single-row Encoder + load_router
    from routers.base import load_router
    from routers.encoder import Encoder

    sc = load_router(cluster_pair).score(Encoder.default().embed(prompts))
    assert np.allclose(sc.strong_win, [r["strong_win"] for r in rows], atol=1e-5)


def test_score_encoder_tiers_keep_the_format(app, cluster_pair, mmlu_dir, tmp_path):
    """--encoder fast scores static-table embeddings; tiered mixes them by margin, same rows (an
    escalated prompt as MiniLM cut to 64 tokens scores it: several of these prompts are longer)."""
    from routers.base import load_router
    from routers.encoder import Encoder
    from routers.encoders.static import StaticEncoder
    from routers.encoders.tiered import ESCALATION_MAX_TOKENS, margins, strong_win_cdf

    with open(mmlu_dir / "mmlu_anatomy.csv") as f:
        prompts = [r["prompt"] for r in csv.DictReader(f)][:12]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    router = load_router(cluster_pair)
    fast = router.score(StaticEncoder.default().embed(prompts))
    accurate = router.score(Encoder.default().embed(prompts))
    cdf = strong_win_cdf(router.meta)  # the band is in calibration percentiles
    band = float(np.median(margins(fast, 0.5, cdf)))  # about half the prompts inside the band
    got = {}
    for tier in ("fast", "accurate", "tiered"):
        out = tmp_path / f"{tier}.jsonl"
        args = ["score", "--router", str(cluster_pair), "--input", str(inp), "--output", str(out)]
        res = runner.invoke(app, [*args, "--encoder", tier, "--band", str(band)])
        assert res.exit_code == 0, res.output
        rows = [json.loads(l) for l in out.read_text().splitlines()]
        assert [sorted(r) for r in rows] == [["id", "scores", "strong_win"]] * len(prompts)
        got[tier] = np.array([r["strong_win"] for r in rows])
    assert np.allclose(got["fast"], fast.strong_win, atol=1e-5)
    assert np.allclose(got["accurate"], accurate.strong_win, atol=1e-5)
    inside = margins(fast, 0.5, cdf) < band
    assert 0 < inside.sum() < len(prompts)
    # an escalated prompt is embedded by MiniLM cut to ESCALATION_MAX_TOKENS, as the gateway does
    cut = router.score(Encoder.default().embed(prompts, max_tokens=ESCALATION_MAX_TOKENS))
    assert np.allclose(got["tiered"], np.where(inside, cut.strong_win, fast.strong_win), atol=1e-5)


def test_eval_prints_metrics_and_baselines(app, cluster_pair, mmlu_dir, tmp_path):
    png = tmp_path / "plot.png"
    res = runner.invoke(
        app,
        [
            "eval",
            "--router",
            str(cluster_pair),
            "--data",
            str(mmlu_dir),
            "--format",
            "routellm",
            "--holdout",
            "0.2",
            "--plot",
            str(png),
        ],
    )
    assert res.exit_code == 0, res.output
    for word in ("APGR", "CPT(50%)", "CPT(80%)", "random", "oracle", "strong only", "weak only"):
        assert word in res.output
    assert png.stat().st_size > 1000
    res = runner.invoke(
        app,
        ["eval", "--router", str(cluster_pair), "--data", str(mmlu_dir), "--format", "routellm", "--json"]
        + ["--in-sample"],
    )
    rep = json.loads(res.output)
    assert 0 <= rep["pair"]["apgr"] <= 2 and rep["pair_baselines"]["random"]["apgr"] == 0.5
    res = runner.invoke(
        app,
        [
            "eval",
            "--router",
            str(cluster_pair),
            "--data",
            str(mmlu_dir),
            "--format",
            "routellm",
            "--holdout",
            "0.2",
            "--split",
            "row",
            "--json",
            "--in-sample",  # a row split of data the router saw 80% of
        ],
    )
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)
    assert row["data"]["split"] == "row" and row["rows"] != rep["rows"]
    res = runner.invoke(
        app,
        ["eval", "--router", str(cluster_pair), "--data", str(mmlu_dir), "--format", "routellm", "--split", "subject"],
    )
    assert res.exit_code != 0 and "--split must be one of group, row" in res.output


def test_long_jobs_show_progress_bars(app, mmlu_dir, tmp_path, monkeypatch):
    """train and eval show bars with counts and an ETA (embedding prompts, fitting epochs)."""
    monkeypatch.setenv("SHUNTER_CACHE_DIR", str(tmp_path / "cache"))  # nothing cached: train embeds
    out, data = tmp_path / "mf", str(mmlu_dir / "mmlu_anatomy.csv")
    res = runner.invoke(
        app,
        ["train", "--router", "mf", "--data", data, "--format", "routellm", "--out", str(out)]
        + ["--holdout", "0.2", "--opt", "max_epochs=3", "--opt", "patience=5"],
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"embedding .* (\d+)/\1 prompts 100% .*ETA", res.output), res.output
    assert re.search(r"fitted mf .* 3/3 epochs 100% .*ETA", res.output), res.output
    monkeypatch.setenv("SHUNTER_CACHE_DIR", str(tmp_path / "cache2"))  # and eval embeds again
    res = runner.invoke(app, ["eval", "--router", str(out), "--data", data, "--format", "routellm", "--in-sample"])
    assert res.exit_code == 0, res.output
    assert re.search(r"embedding .* (\d+)/\1 prompts 100% .*ETA", res.output), res.output
    assert res.output.index("embedding") < res.output.index("APGR")


def test_eval_plot_without_the_train_extra(app, cluster_pair, mmlu_dir, tmp_path, monkeypatch):
    """No matplotlib: the table still prints, then one line names the extra to install."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    png = tmp_path / "plot.png"
    args = ["eval", "--router", str(cluster_pair), "--data", str(mmlu_dir), "--format", "routellm"]
    res = runner.invoke(app, [*args, "--holdout", "0.2", "--plot", str(png)])
    assert res.exit_code == 1
    assert "APGR" in res.output and "oracle" in res.output
    assert res.output.index("APGR") < res.output.index("--plot needs matplotlib, from the train extra")
    assert ".venv/bin/pip install -e '.[train]'" in res.output
    assert "Traceback" not in res.output and not png.exists()


def test_train_without_the_train_extra(app, mmlu_dir, tmp_path, monkeypatch):
    """No torch (a serving install): one line names the extra, no traceback."""
    monkeypatch.setitem(sys.modules, "torch", None)
    data = str(mmlu_dir / "mmlu_anatomy.csv")
    res = runner.invoke(
        app, ["train", "--router", "mf", "--data", data, "--format", "routellm", "--out", str(tmp_path / "mf")]
    )
    assert res.exit_code == 1
    assert "train --router mf needs torch, from the train extra" in res.output
    assert ".venv/bin/pip install -e '.[train]'" in res.output
    assert "Traceback" not in res.output


def test_eval_plot_titles_and_hulls(app, cluster_pair, mmlu_dir, rb_csv, tmp_path):
    """The plot's title carries the metric; the zero router's hull is drawn; names sit in the legend."""
    from routers.evaluate import figure
    from routers.report import evaluate_artifact

    rep = evaluate_artifact(cluster_pair, [mmlu_dir], "routellm", holdout=0.2)
    fig = figure(rep)
    ax = fig.axes[0]
    assert f"APGR {rep['pair']['apgr']:.3f} (random 0.500" in ax.get_title()
    assert len(ax.texts) == 0  # no annotation drawn over the lines
    out = tmp_path / "cost"
    res = runner.invoke(
        app,
        ["train", "--router", "cost", "--data", str(rb_csv), "--format", "routerbench", "--out", str(out)]
        + ["--opt", "max_epochs=5"],
    )
    assert res.exit_code == 0, res.output
    rep = evaluate_artifact(out, [rb_csv], "routerbench", in_sample=True)
    fig = figure(rep)
    ax = fig.axes[0]
    assert f"AIQ {rep['many']['aiq']:.4f} (zero router {rep['many_baselines']['zero']['aiq']:.4f}" in ax.get_title()
    labels = [line.get_label() for line in ax.get_lines()]
    assert "zero router (hull of single models)" in labels
    assert len(ax.texts) == 0
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "gpt-4-1106-preview" in legend and "oracle" in legend
    bbox = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert bbox.x0 >= ax.get_window_extent().x1  # the legend sits outside the axes
    fig.savefig(tmp_path / "aiq.png")


def test_eval_aiq(app, rb_csv, tmp_path):
    out = tmp_path / "cost"
    res = runner.invoke(
        app,
        [
            "train",
            "--router",
            "cost",
            "--data",
            str(rb_csv),
            "--format",
            "routerbench",
            "--out",
            str(out),
            "--opt",
            "max_epochs=15",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", "--router", str(out), "--data", str(rb_csv), "--format", "routerbench"])
    assert res.exit_code == 2 and "trained on these rows (100%" in res.output and "--in-sample" in res.output
    res = runner.invoke(
        app, ["eval", "--router", str(out), "--data", str(rb_csv), "--format", "routerbench", "--in-sample"]
    )
    assert res.exit_code == 0, res.output
    assert "IN-SAMPLE: the router was trained on 100% of these rows" in res.output
    for word in ("AIQ", "zero router", "random", "oracle", "gpt-4-1106-preview"):
        assert word in res.output


def test_calibrate(app, cluster_pair, mmlu_dir, tmp_path):
    res = runner.invoke(app, ["calibrate", "--router", str(cluster_pair), "--strong-share", "0.3"])
    assert res.exit_code == 0, res.output
    t_stored = json.loads(res.output)["threshold"]
    with open(mmlu_dir / "mmlu_virology.csv") as f:
        prompts = [r["prompt"] for r in csv.DictReader(f)][:60]
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"prompt": x}) + "\n" for x in prompts))
    res = runner.invoke(app, ["calibrate", "--router", str(cluster_pair), "--prompts", str(p), "--strong-share", "0.3"])
    got = json.loads(res.output)
    assert abs(got["strong_share"] - 0.3) < 0.1 and 0 <= t_stored <= 1


def test_profile_adds_model_without_retraining(app, rb_csv, tmp_path):
    from routers.base import load_router
    from routers.data import load_table
    from routers.train import table_embeddings, train_router

    table = load_table(rb_csv, "routerbench")
    new = "gpt-4-1106-preview"
    others = [m for m in table.models if m != new]
    out = tmp_path / "cluster"
    train_router("cluster", table.select_models(others), out, k=8)
    onnx_hash = hashlib.sha256((out / "router.onnx").read_bytes()).hexdigest()
    before = json.loads((out / "router.json").read_text())

    res = runner.invoke(
        app, ["profile", "--router", str(out), "--model", new, "--data", str(rb_csv), "--format", "routerbench"]
    )
    assert res.exit_code == 0, res.output
    after = json.loads((out / "router.json").read_text())
    assert hashlib.sha256((out / "router.onnx").read_bytes()).hexdigest() == onnx_hash  # no retraining
    assert after["cluster_quality"][others[0]] == before["cluster_quality"][others[0]]
    assert new in after["models"] and after["typical_cost_usd"][new] > 0

    router = load_router(out)
    emb = table_embeddings(table)
    sc = router.score(emb)
    j = router.models.index(new)
    # gpt-4 is the most accurate model: with quality alone it should win most prompts
    picks = [choose(dict(zip(router.models, q.tolist())), {}, Objective("cost_weight", 0.0)).model for q in sc.quality]
    assert picks.count(new) / len(picks) > 0.5
    # where its profiled quality is highest relative to the rest, it is chosen
    gap = sc.quality[:, j] - np.delete(sc.quality, j, axis=1).max(axis=1)
    top = np.argsort(-gap)[:20]
    assert all(picks[i] == new for i in top)


def test_strong_share_for_any_pair_of_a_many_model_router():
    import json as _json
    from pathlib import Path

    from routers.calibration import strong_share_threshold

    meta = _json.loads(
        (Path(__file__).resolve().parents[2] / "routers/artifacts/cost-routerbench/router.json").read_text()
    )
    q = np.asarray(meta["calibration"]["quality_sample"])
    s, w = "gpt-4-1106-preview", "mistralai/mistral-7b-chat"
    t = strong_share_threshold(meta, 0.3, strong=s, weak=w)
    sw = 0.5 + 0.5 * (q[:, meta["models"].index(s)] - q[:, meta["models"].index(w)])
    assert abs((sw >= t).mean() - 0.3) < 0.02
    with pytest.raises(ValueError):
        strong_share_threshold(meta, 0.3)  # no pair named, none stored


def test_eval_refuses_a_shipped_artifact_on_its_own_training_rows(app, mmlu_dir):
    """knn-mmlu was refit on every MMLU row: its router.json records the data file hash, so a
    (held-out-looking) 20% split of the same files is refused unless --in-sample is given."""
    from pathlib import Path

    from routers.data import shared_data_dir

    art = Path(__file__).resolve().parents[2] / "routers" / "artifacts" / "knn-mmlu"
    data = shared_data_dir() / "routellm-mmlu"
    args = ["eval", "--router", str(art), "--data", str(data), "--format", "routellm", "--holdout", "0.2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "in-sample, not a test" in res.output and "Traceback" not in res.output


def test_calibrate_every_kind(app, cluster_pair, rb_csv, tmp_path):
    """Pair routers give a strong_win threshold; many-model routers a cost_weight for a target
    mean cost or top-model share (or a threshold for a named pair); shares outside [0, 1] are
    refused with a clear message."""
    out = tmp_path / "cost"
    from routers.data import load_table
    from routers.train import train_router

    train_router("cost", load_table(rb_csv, "routerbench"), out, max_epochs=5)
    res = runner.invoke(app, ["calibrate", "--router", str(out), "--top-share", "0.1"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert got["met"] and got["top_share"] <= 0.1 and got["cost_weight"] > 0
    res = runner.invoke(app, ["calibrate", "--router", str(out), "--top-share", "1"])
    assert json.loads(res.output)["cost_weight"] == 0.0  # no constraint: best quality
    res = runner.invoke(app, ["calibrate", "--router", str(out), "--mean-cost", "0.0005"])
    low = json.loads(res.output)
    assert res.exit_code == 0 and low["mean_cost"] <= 0.0005 and low["met"]
    res = runner.invoke(
        app,
        ["calibrate", "--router", str(out), "--strong-share", "0.3"]
        + ["--strong", "gpt-4-1106-preview", "--weak", "mistralai/mistral-7b-chat"],
    )
    assert res.exit_code == 0 and 0 <= json.loads(res.output)["threshold"] <= 1
    for bad in (["--strong-share", "1.5"], ["--top-share", "-0.1"], ["--strong-share", "nan"]):
        res = runner.invoke(app, ["calibrate", "--router", str(cluster_pair), *bad])
        assert res.exit_code == 2 and "must be between 0 and 1" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["calibrate", "--router", str(cluster_pair)])
    assert res.exit_code == 2 and "exactly one of" in res.output
    res = runner.invoke(app, ["calibrate", "--router", str(out), "--strong-share", "0.3"])
    assert res.exit_code == 2 and "strong_win calibration" in res.output  # no pair named


@pytest.fixture(scope="module")
def llmr_cut(data_dir, tmp_path_factory):
    """The first 40 LLMRouter items (nine other models, none of the MMLU pair), written by this fixture."""
    items = json.loads((data_dir / "llmrouter" / "train.json").read_text())[:40]
    out = tmp_path_factory.mktemp("llmr") / "cut.json"
    out.write_text(json.dumps(items))
    return out


def test_a_pair_router_on_data_without_its_models_is_a_clear_error(app, cluster_pair, llmr_cut, tmp_path):
    """A GPT-4/Mixtral router evaluated on LLMRouter's models has nothing to score: ``eval`` and
    ``learn-curve`` say so and name both model lists (``learn-curve`` used to fail inside the AIQ
    sweep with "choose() needs at least one candidate", and ``eval`` printed an empty report)."""
    common = ["--router", str(cluster_pair), "--data", str(llmr_cut), "--format", "llmrouter"]
    res = runner.invoke(app, ["eval", *common])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "share neither its strong/weak pair" in text and "gpt-4-1106-preview" in text and "the data has" in text
    out = tmp_path / "c.json"
    res = runner.invoke(app, ["learn-curve", *common, "--budgets", "0,10", "--json", str(out)])
    assert res.exit_code == 2 and not out.exists()
    text = " ".join(res.output.replace("│", " ").split())
    assert "nothing to score" in text and "choose()" not in text


def test_learn_curve_scores_every_budget_on_the_models_the_router_knew(app, rb_csv, tmp_path):
    """A model the router has never seen (here a renamed copy of WizardLM's columns) is learnt
    by ``adapt`` from the judged rows, but AIQ stays over the models the router as shipped scores
    at every budget, so every point has the same cost range and random router as budget 0."""
    router = tmp_path / "cost"
    args = ["train", "--router", "cost", "--data", str(rb_csv), "--format", "routerbench", "--out", str(router)]
    res = runner.invoke(app, [*args, "--opt", "max_epochs=15"])
    assert res.exit_code == 0, res.output
    new = "acme/new-model"
    with open(rb_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    src = "WizardLM/WizardLM-13B-V1.2"
    for r in rows:
        for suffix in ("", "|model_response", "|total_cost"):
            r[new + suffix] = r[src + suffix]
    wider = tmp_path / "wider.csv"
    with open(wider, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    curves = {}
    for name, data in (("known", rb_csv), ("wider", wider)):
        out = tmp_path / f"{name}.json"
        common = ["--router", str(router), "--data", str(data), "--format", "routerbench"]
        res = runner.invoke(app, ["learn-curve", *common, "--budgets", "0,60", "--seed", "0", "--json", str(out)])
        assert res.exit_code == 0, res.output
        curves[name] = json.loads(out.read_text())
    known, wide = curves["known"], curves["wider"]
    assert wide["metric"] == "aiq" and wide["values"][0] == pytest.approx(known["values"][0])
    assert wide["baseline_random"] == pytest.approx(known["baseline_random"])


@pytest.mark.parametrize(
    "args, says",
    [
        (
            [
                "learn-curve",
                "--router",
                "{tmp}/nowhere",
                "--data",
                "{mmlu}",
                "--format",
                "routellm",
                "--json",
                "{tmp}/c.json",
            ],
            "nowhere/router.json",
        ),
        (
            [
                "learn-curve",
                "--router",
                "{prior}",
                "--data",
                "{tmp}/missing.csv",
                "--format",
                "routellm",
                "--json",
                "{tmp}/c.json",
            ],
            "missing.csv",
        ),
        (
            [
                "learn-curve",
                "--router",
                "{prior}",
                "--data",
                "{mmlu}",
                "--format",
                "llmrouter",
                "--json",
                "{tmp}/c.json",
            ],
            "no *.json* files",
        ),
        (["eval", "--router", "{prior}", "--data", "{tmp}/missing.csv", "--format", "routellm"], "missing.csv"),
        (
            ["train", "--router", "knn", "--data", "{tmp}/missing.csv", "--format", "routellm", "--out", "{tmp}/a"],
            "missing.csv",
        ),
    ],
)
def test_a_missing_input_is_one_line_and_exit_2(app, mmlu_dir, tmp_path, args, says):
    from routers.data import repo_root

    fill = {"tmp": str(tmp_path), "mmlu": str(mmlu_dir), "prior": str(repo_root() / "routers/artifacts/prior")}
    r = runner.invoke(app, [a.format(**fill) for a in args])
    assert r.exit_code == 2, r.output
    assert "error: " in r.output and says in r.output and "Traceback" not in r.output


def test_learn_curve_plot_without_the_train_extra(app, cluster_pair, mmlu_dir, tmp_path, monkeypatch):
    """A serving install has no matplotlib: the curve is still written (exit 0) and one line says
    why there is no plot."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out, png = tmp_path / "curve.json", tmp_path / "curve.png"
    args = ["learn-curve", "--router", str(cluster_pair), "--data", str(mmlu_dir / "mmlu_anatomy.csv")]
    res = runner.invoke(
        app, [*args, "--format", "routellm", "--budgets", "0,20", "--json", str(out), "--plot", str(png)]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["budgets"] == [0, 20]
    assert "--plot skipped: it needs matplotlib, from the train extra" in res.output
    assert "Traceback" not in res.output and not png.exists()
