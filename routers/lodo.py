"""Leave-one-data-set-out validation: train on the rest of ``../shared/data``, score the held-out part.

    HF_HUB_OFFLINE=1 .venv/bin/python -m routers.lodo [--out docs/eval.md] [--json-out F]

A router is judged on domains it never saw, as in production. Each fold holds out one whole
data set or one task of a data set (every row of it), trains on everything else in
``../shared/data`` at once, and scores the held-out rows:

- **pair folds** (APGR, GPT-4-1106 vs Mixtral-8x7B, the pair both MMLU and RouterBench record;
  for LLMRouter's tasks its own pair ``LLMROUTER_PAIR``);
- **many-model folds** (AIQ over the held-out data set's own models with their costs).

Routers compared on every fold, all trained on exactly the fold's training rows:

- ``prior``: the universal prior (``routers.prior``) on every data set at once;
- ``ridge``: one ridge regression per model on the same embeddings (the baseline the issue
  measured out of domain);
- ``knn``: today's default family (``knn-mmlu``'s recipe), trained only on the held-out data
  set's **own** other rows (the shipped routers' setting: one router per data set); for a
  whole held-out data set it is trained on MMLU (the shipped default's data);
- ``random``: APGR 0.5 by definition; AIQ of a seeded random router.

The result is written between the ``<!-- lodo:start -->`` / ``<!-- lodo:end -->`` markers
of ``docs/eval.md`` (``routers.eval_report`` keeps that block).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .data import RoutingTable, load_table, shared_data_dir, source_of
from .evaluate import evaluate_scores, pair_curve, pair_metrics

START, END = "<!-- lodo:start -->", "<!-- lodo:end -->"
TIERS_START, TIERS_END = "<!-- lodo-tiers:start -->", "<!-- lodo-tiers:end -->"
TIER_SHARE, TIER_BAND = 0.3, 0.075  # the default policy: target_strong_share 0.3, encoder_band 0.075
ROUTELLM_PAIR = ("gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1")
# LLMRouter has neither; its pair is its best model on average vs the best 8B model.
LLMROUTER_PAIR = ("llama-3.1-nemotron-51b-instruct", "llama-3.1-8b-instruct")

# MMLU's own subject categories (Hendrycks et al.'s categories.py).
MMLU_CATEGORIES = {
    "STEM": (
        "abstract_algebra astronomy college_biology college_chemistry college_computer_science "
        "college_mathematics college_physics computer_security conceptual_physics electrical_engineering "
        "elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science "
        "high_school_mathematics high_school_physics high_school_statistics machine_learning"
    ),
    "humanities": (
        "formal_logic high_school_european_history high_school_us_history high_school_world_history "
        "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy "
        "prehistory professional_law world_religions"
    ),
    "social sciences": (
        "econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics "
        "high_school_microeconomics high_school_psychology human_sexuality professional_psychology "
        "public_relations security_studies sociology us_foreign_policy"
    ),
    "other": (
        "anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging management "
        "marketing medical_genetics miscellaneous nutrition professional_accounting professional_medicine virology"
    ),
}
MMLU_MATH = {"abstract_algebra", "college_mathematics", "elementary_mathematics", "high_school_mathematics"}
MMLU_MATH |= {"high_school_statistics"}
_LATEX = re.compile(r"\$|\\frac|\\sqrt|\^\{")
_WORD_PROBLEM = re.compile(r"\b(how many|how much|what is the (sum|product|value)|calculate|compute)\b", re.I)


def is_math(prompt: str) -> bool:
    """LLMRouter's math items (GSM8K word problems, MATH with LaTeX), by a rule: LaTeX or a
    dollar amount, or a how-many/compute question with at least two numbers."""
    return bool(_LATEX.search(prompt)) or (bool(_WORD_PROBLEM.search(prompt)) and len(re.findall(r"\d+", prompt)) >= 2)


def task_of(table: RoutingTable) -> np.ndarray:
    """Per-row task label of a merged shared-data table (``source/task``)."""
    cat = {s: c for c, subs in MMLU_CATEGORIES.items() for s in subs.split()}
    out = []
    for g in table.groups:
        src, rest = g.split(":", 1)
        if src == "routellm":
            out.append(f"routellm/{cat.get(rest, 'other')}")
        elif src == "routerbench":
            out.append(f"routerbench/{rest.split('.')[0]}")
        else:
            out.append(f"{src}/cluster {rest}")
    return np.array(out)


@dataclass(frozen=True)
class Fold:
    name: str
    held_out: Callable[[RoutingTable, np.ndarray], np.ndarray]  # (table, tasks) -> bool mask
    source: str  # whose models/outcomes score it
    pair: tuple[str, str] | None
    many: bool


def _src(table: RoutingTable) -> np.ndarray:
    return np.array([source_of(g) for g in table.groups])


def folds() -> list[Fold]:
    def whole(src: str) -> Callable:
        return lambda t, tasks: _src(t) == src

    def task(name: str) -> Callable:
        return lambda t, tasks: tasks == name

    def mmlu_math(t: RoutingTable, tasks: np.ndarray) -> np.ndarray:
        return np.array([g.split(":", 1)[1] in MMLU_MATH if source_of(g) == "routellm" else False for g in t.groups])

    def llm_math(t: RoutingTable, tasks: np.ndarray) -> np.ndarray:
        return (_src(t) == "llmrouter") & np.array([is_math(p) for p in t.prompts])

    out = [
        Fold("MMLU (whole data set)", whole("routellm"), "routellm", ROUTELLM_PAIR, False),
        Fold("RouterBench (whole data set)", whole("routerbench"), "routerbench", ROUTELLM_PAIR, False),
    ]
    out += [Fold(f"MMLU {c}", task(f"routellm/{c}"), "routellm", ROUTELLM_PAIR, False) for c in MMLU_CATEGORIES]
    out.append(Fold("MMLU math subjects", mmlu_math, "routellm", ROUTELLM_PAIR, False))
    out += [
        Fold(f"RouterBench {t}", task(f"routerbench/{t}"), "routerbench", ROUTELLM_PAIR, True)
        for t in ("arc-challenge", "mbpp", "winogrande")
    ]
    out += [
        Fold(f"LLMRouter cluster {c}", task(f"llmrouter/cluster {c}"), "llmrouter", LLMROUTER_PAIR, True)
        for c in ("0", "1", "2")
    ]
    out.append(Fold("LLMRouter math (rule)", llm_math, "llmrouter", LLMROUTER_PAIR, True))
    return out


# ---------------------------------------------------------------------------- routers
def fit_ridge(x: np.ndarray, q: np.ndarray, alpha: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """One ridge regression per model column on the rows where it has an outcome."""
    from sklearn.linear_model import Ridge

    fits = []
    for j in range(q.shape[1]):
        ok = np.isfinite(q[:, j])
        fits.append(Ridge(alpha=alpha).fit(x[ok], q[ok, j]) if ok.sum() >= 2 else None)

    def predict(e: np.ndarray) -> np.ndarray:
        cols = [f.predict(e) if f is not None else np.full(len(e), np.nan) for f in fits]
        return np.clip(np.stack(cols, 1), 0, 1).astype(np.float32)

    return predict


SHARES = (0.1, 0.2, 0.3, 0.4, 0.5)


def pgr_at(score: np.ndarray, q_strong: np.ndarray, q_weak: np.ndarray) -> dict[str, float]:
    """Share of the strong-weak quality gap kept (PGR) when ``share`` of prompts, the top by
    ``score``, go to the strong model, for each share in ``SHARES``."""
    share, qual = pair_curve(np.asarray(score, np.float64), q_strong, q_weak)
    span = q_strong.mean() - q_weak.mean()
    span = span if abs(span) > 1e-12 else 1e-12
    return {f"{s:.1f}": float((np.interp(s, share, qual) - q_weak.mean()) / span) for s in SHARES}


def _scores(table: RoutingTable, quality: np.ndarray) -> Any:
    from .base import RouterScores

    return RouterScores(list(table.models), np.asarray(quality, np.float32))


def _metrics(fold: Fold, table: RoutingTable, train: np.ndarray, test: np.ndarray, q: np.ndarray) -> dict:
    """APGR of the fold's pair and AIQ over the fold's source models, on the test rows."""
    res: dict[str, Any] = {"rows": int(test.sum())}
    if fold.pair:
        js, jw = (table.models.index(m) for m in fold.pair)
        ok = test & np.isfinite(table.quality[:, js]) & np.isfinite(table.quality[:, jw])
        sw = 0.5 + 0.5 * (q[ok, js] - q[ok, jw])
        qs, qw = table.quality[ok, js], table.quality[ok, jw]
        res["pair"] = {**pair_metrics(sw, qs, qw), "rows": int(ok.sum()), "pgr_at": pgr_at(sw, qs, qw)}
    if fold.many:
        src = _src(table)
        cols = [j for j in range(len(table.models)) if np.isfinite(table.quality[src == fold.source, j]).any()]
        models = [table.models[j] for j in cols]
        sub = table.subset(np.flatnonzero(test)).select_models(models)
        tr = table.subset(np.flatnonzero(train & (src == fold.source))).select_models(models)
        with np.errstate(all="ignore"):
            typical = {m: float(v) for m, v in zip(models, np.nanmean(tr.cost, axis=0)) if np.isfinite(v)}
        rep = evaluate_scores(sub, _scores(sub, q[test][:, cols]), {"typical_cost_usd": typical}, with_baselines=True)
        res["many"] = {
            "aiq": rep["many"]["aiq"],
            "models": len(models),
            "random": rep["many_baselines"]["random"]["aiq"],
            "zero": rep["many_baselines"]["zero"]["aiq"],
            "oracle": rep["many_baselines"]["oracle"]["aiq"],
        }
    return res


def _knn(fold: Fold, table: RoutingTable, emb: np.ndarray, train: np.ndarray, tmp: Path) -> np.ndarray | None:
    """Today's default family trained on the held-out data set's own other rows (MMLU for a
    whole held-out data set); quality for every row of ``table`` (NaN for unknown models)."""
    from .base import load_router
    from .train import train_router

    src = _src(table)
    rows = train & (src == fold.source)
    if not rows.any():
        rows = src == "routellm"
        if fold.source == "routellm":
            return None
    sub = table.subset(np.flatnonzero(rows))
    keep = [m for j, m in enumerate(table.models) if np.isfinite(sub.quality[:, j]).any()]
    sub = sub.select_models(keep)
    sub.embeddings = emb[rows]
    out = tmp / "knn"
    train_router("knn", sub, out, seed=0)
    sc = load_router(out).score(emb)
    q = np.full((len(table), len(table.models)), np.nan, np.float32)
    for j, m in enumerate(sc.models):
        q[:, table.models.index(m)] = sc.quality[:, j]
    return q


def run_fold(
    fold: Fold,
    table: RoutingTable,
    emb: np.ndarray | list[np.ndarray],
    tasks: np.ndarray,
    tmp: Path,
    baselines: bool = True,
    **prior_kw: Any,
) -> dict:
    """One fold. ``emb``: the embeddings, or a list of several encoders' embeddings: then the
    routers train on all of them (one row per encoder) and score with the last one."""
    from .prior import fit, label_weights, predict

    embs = emb if isinstance(emb, list) else [emb]
    emb = embs[-1]
    test = fold.held_out(table, tasks)
    train = ~test
    x = np.concatenate([e[train] for e in embs])
    qtr = np.concatenate([table.quality[train]] * len(embs))
    groups = [g for g, t in zip(table.groups, train) if t] * len(embs)
    res: dict[str, Any] = {"fold": fold.name, "train_rows": int(train.sum())}
    t0 = time.time()
    w = fit(x, qtr, label_weights(qtr, groups, prior_kw.pop("balance", "source")), **prior_kw)
    res["prior"] = _metrics(fold, table, train, test, predict(w, emb))
    res["prior"]["seconds"] = round(time.time() - t0, 1)
    if len(embs) == 2 and fold.pair:  # trained on both tiers: score MiniLM and the tiered rule too
        res.update(_tiers(fold, table, train, test, predict(w, embs[-1]), predict(w, embs[0])))
        # the same recipe on the fast tier alone (the shipped prior-fast, the default policy's)
        qf = table.quality[train]
        groups_f = [g for g, t in zip(table.groups, train) if t]
        w_fast = fit(embs[-1][train], qf, label_weights(qf, groups_f, "source"), **dict(prior_kw))
        res["prior_fast_only"] = _metrics(fold, table, train, test, predict(w_fast, embs[-1]))
        res["ridge_accurate"] = _metrics(
            fold, table, train, test, fit_ridge(embs[0][train], table.quality[train])(embs[0])
        )
    if not baselines:
        return res
    res["ridge"] = _metrics(fold, table, train, test, fit_ridge(x, qtr)(emb))
    knn_q = _knn(fold, table, emb, train, tmp)
    if knn_q is not None:
        res["knn"] = _metrics(fold, table, train, test, knn_q)
    return res


def _tiers(
    fold: Fold, table: RoutingTable, train: np.ndarray, test: np.ndarray, q_fast: np.ndarray, q_acc: np.ndarray
) -> dict:
    """The fold's pair scored as the default policy serves it: the fast tier, MiniLM, and the
    tiered rule (``gateway.policy.tiers``): MiniLM re-scores a prompt whose fast ``strong_win`` is
    within ``TIER_BAND`` calibration percentiles of the threshold that sends ``TIER_SHARE`` of the
    calibration prompts (here: the training rows) to the strong model."""
    from .encoders.tiered import percentile_margin

    assert fold.pair is not None
    js, jw = (table.models.index(m) for m in fold.pair)
    sw = 0.5 + 0.5 * (q_fast[:, js] - q_fast[:, jw])
    cdf = np.maximum.accumulate(np.quantile(sw[train], np.linspace(0, 1, 101)))
    threshold = float(np.quantile(sw[train], 1 - TIER_SHARE))
    band = TIER_BAND
    esc = np.array([percentile_margin(v, threshold, cdf) < band for v in sw.tolist()])
    q_tier = np.where(esc[:, None], q_acc, q_fast)
    out = {"prior_accurate": _metrics(fold, table, train, test, q_acc)}
    out["prior_tiered"] = _metrics(fold, table, train, test, q_tier)
    out["prior_tiered"]["escalated"] = float(esc[test].mean())
    for k in ("prior_accurate", "prior_tiered"):
        out[k].pop("many", None)  # the band is the pair rule's; many-model objectives differ
    return out


def render_tiers(results: list[dict]) -> str:
    """The shipped priors on each encoder tier, per held-out pair fold, and the MiniLM ridge baseline."""
    rows = [r for r in results if "prior_tiered" in r and "pair" in r["prior_tiered"]]
    lines = [
        TIERS_START,
        "### The prior in each encoder tier (leave one data set out)",
        "",
        "Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m routers.lodo --encoder both --no-baselines --json-out lodo-both.json`",
        "(about 20 minutes; `--no-baselines` skips the kNN and both-tier ridge columns of the table above).",
        "The shipped `prior` is trained on both tiers' embeddings; each held-out fold is scored on the",
        "static table (`fast`), on MiniLM (`accurate`), and by the tiered rule (MiniLM, cut to 64 tokens in",
        f"the gateway and full here, for prompts within {TIER_BAND} calibration percentiles of the threshold",
        f"that sends {TIER_SHARE:.0%} to the strong model). `fast-only` is the same recipe trained on the",
        "static table's embeddings alone: the shipped `prior-fast`, the default policy's router.",
        "`ridge` is one ridge regression per model on MiniLM embeddings of the same training rows.",
        "",
        "| held out | APGR fast-only prior (shipped `prior-fast`) | APGR fast | APGR tiered | escalated "
        "| APGR accurate | APGR ridge (MiniLM) | gap kept at 30% strong: fast-only / fast / tiered / accurate |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def apgr(r: dict, k: str) -> float | None:
        v = r.get(k, {}).get("pair", {}).get("apgr")
        return None if v is None else float(v)

    def kept(r: dict, k: str) -> str:
        v = r.get(k, {}).get("pair", {}).get("pgr_at", {}).get("0.3")
        return f"{v:.0%}" if v is not None else "–"

    means: dict[str, list[float]] = {"fast-only": [], "fast": [], "tiered": [], "accurate": [], "ridge": []}
    kept_means: dict[str, list[float]] = {k: [] for k in ("prior_fast_only", "prior", "prior_tiered", "prior_accurate")}
    for r in rows:
        ridge = apgr(r, "ridge_accurate")
        vals = {
            "fast-only": apgr(r, "prior_fast_only"),
            "fast": apgr(r, "prior"),
            "tiered": apgr(r, "prior_tiered"),
            "accurate": apgr(r, "prior_accurate"),
        }
        if not r["fold"].startswith("LLMRouter") and ridge is not None and None not in vals.values():
            for k, v in {**vals, "ridge": ridge}.items():
                means[k].append(float(v))  # type: ignore[arg-type]
            for k in kept_means:
                kept_means[k].append(float(r[k]["pair"]["pgr_at"]["0.3"]))
        fmt = {k: f"{v:.3f}" if v is not None else "–" for k, v in {**vals, "ridge": ridge}.items()}
        lines.append(
            f"| {r['fold']} | **{fmt['fast-only']}** | {fmt['fast']} | {fmt['tiered']} | "
            f"{r['prior_tiered']['escalated']:.0%} | {fmt['accurate']} | {fmt['ridge']} | "
            f"{kept(r, 'prior_fast_only')} / {kept(r, 'prior')} / {kept(r, 'prior_tiered')} / {kept(r, 'prior_accurate')} |"
        )
    if means["fast"]:
        lines += [
            "",
            f"- Mean GPT-4 / Mixtral APGR over the {len(means['fast'])} folds: "
            + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in means.items())
            + ".",
            "- Mean share of the quality gap kept at 30% strong calls over the same folds: "
            + ", ".join(
                f"{label} {np.mean(kept_means[k]):.1%}"
                for label, k in (
                    ("fast-only", "prior_fast_only"),
                    ("fast", "prior"),
                    ("tiered", "prior_tiered"),
                    ("accurate", "prior_accurate"),
                )
            )
            + " (random: 30%).",
        ]
    lines += [TIERS_END, ""]
    return "\n".join(lines)


def shared_table() -> RoutingTable:
    return load_table(shared_data_dir(), "mixed")


def run(
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
    baselines: bool = True,
    encoder: str = "accurate",
    **prior_kw: Any,
) -> list[dict]:
    """Every fold. ``encoder``: ``accurate`` (MiniLM), ``fast`` (static table) or ``both``
    (trained on both encoders' embeddings, scored on the fast tier's: the shipped prior)."""
    from .train import encoders_for, table_embeddings

    table = shared_table()
    embs = [table_embeddings(table, e) for e in encoders_for(encoder)]
    emb = embs if len(embs) > 1 else embs[0]
    tasks = task_of(table)
    results = []
    with tempfile.TemporaryDirectory() as d:
        for fold in folds():
            if only and not any(o.lower() in fold.name.lower() for o in only):
                continue
            r = run_fold(fold, table, emb, tasks, Path(d), baselines, **dict(prior_kw))
            log(json.dumps(_brief(r)))
            results.append(r)
    return results


def _brief(r: dict) -> dict:
    out: dict[str, Any] = {"fold": r["fold"]}
    for k in ("prior", "ridge", "knn"):
        if k in r:
            out[k] = {
                **({"apgr": round(r[k]["pair"]["apgr"], 3)} if "pair" in r[k] else {}),
                **({"aiq": round(r[k]["many"]["aiq"], 4)} if "many" in r[k] else {}),
            }
    return out


# ---------------------------------------------------------------------------- report
def render(results: list[dict]) -> str:
    lines = [
        START,
        "## Leave one data set out: the universal prior on domains it never saw",
        "",
        "Reproduce (about 10 minutes on 2 CPU cores with cached embeddings):",
        "",
        "```",
        "HF_HUB_OFFLINE=1 .venv/bin/python -m routers.lodo",
        "```",
        "",
        "Each row holds out one whole data set or task, trains on **everything else** in",
        "`../shared/data`, and scores the held-out rows. APGR is on GPT-4-1106 vs Mixtral-8x7B",
        f"(LLMRouter rows: {LLMROUTER_PAIR[0]} vs {LLMROUTER_PAIR[1]}); AIQ is over the held-out",
        "data set's own models and costs. `prior` is the universal prior; `ridge` one ridge",
        "regression per model on the same embeddings and rows; `knn` today's default family",
        "trained on the held-out data set's own other rows (on MMLU for a whole held-out data set).",
        "",
        "| held out | rows | APGR prior | APGR ridge | APGR knn | gap kept at 30% strong (prior) "
        "| AIQ prior | AIQ ridge | AIQ knn | AIQ random / zero |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(r: dict, k: str, m: str, key: str, fmt: str) -> str:
        v = r.get(k, {}).get(m, {}).get(key)
        return format(v, fmt) if v is not None else "–"

    for r in results:
        many = r["prior"].get("many")
        base = f"{many['random']:.3f} / {many['zero']:.3f}" if many else "–"
        lines.append(
            f"| {r['fold']} | {r['prior']['rows']} | **{cell(r, 'prior', 'pair', 'apgr', '.3f')}** | "
            f"{cell(r, 'ridge', 'pair', 'apgr', '.3f')} | {cell(r, 'knn', 'pair', 'apgr', '.3f')} | "
            f"{_kept(r)} | **{cell(r, 'prior', 'many', 'aiq', '.3f')}** | {cell(r, 'ridge', 'many', 'aiq', '.3f')} | "
            f"{cell(r, 'knn', 'many', 'aiq', '.3f')} | {base} |"
        )
    lines += ["", *_means(results)]
    kept = {s: tradeoff(results, s) for s in ("0.2", "0.3", "0.5")}
    lines.append(
        "- Trade-off of `prior` on held-out GPT-4 / Mixtral folds (mean over the MMLU and RouterBench rows): "
        + "; ".join(f"at {float(s):.0%} strong calls, {v:.0%} of the quality gap is kept" for s, v in kept.items())
        + " (random routing keeps exactly the share it sends)."
    )
    lines += [END, ""]
    return "\n".join(lines)


def _kept(r: dict) -> str:
    v = r["prior"].get("pair", {}).get("pgr_at", {}).get("0.3")
    return f"{v:.0%}" if v is not None else "–"


def tradeoff(results: list[dict], share: str = "0.3") -> float:
    """Mean share of the quality gap kept with ``share`` of prompts sent to the strong model,
    over the GPT-4 / Mixtral pair folds (the default policy's pair)."""
    vals = [
        r["prior"]["pair"]["pgr_at"][share]
        for r in results
        if "pair" in r["prior"] and r["prior"]["pair"].get("pgr_at") and not r["fold"].startswith("LLMRouter")
    ]
    return float(np.mean(vals)) if vals else float("nan")


def _means(results: list[dict]) -> list[str]:
    """Means over the folds every router has, for the GPT-4 / Mixtral pair and LLMRouter's pair,
    and AIQ beside the zero router (the hull of the single models)."""
    out = []
    for label, pick in (
        ("GPT-4 / Mixtral APGR", lambda r: not r["fold"].startswith("LLMRouter")),
        ("LLMRouter-pair APGR", lambda r: r["fold"].startswith("LLMRouter")),
    ):
        rows = [r for r in results if pick(r) and all(k in r and "pair" in r[k] for k in ("prior", "ridge", "knn"))]
        if rows:
            vals = ", ".join(
                f"{k} {np.mean([r[k]['pair']['apgr'] for r in rows]):.3f}" for k in ("prior", "ridge", "knn")
            )
            out.append(f"- Mean {label} over the {len(rows)} folds all three routers have: {vals}.")
    rows = [r for r in results if all(k in r and "many" in r[k] for k in ("prior", "ridge", "knn"))]
    if rows:
        vals = ", ".join(f"{k} {np.mean([r[k]['many']['aiq'] for r in rows]):.3f}" for k in ("prior", "ridge", "knn"))
        zero = np.mean([r["prior"]["many"]["zero"] for r in rows])
        out.append(f"- Mean AIQ over the {len(rows)} many-model folds: {vals}; zero router {zero:.3f}.")
    return out


def write_block(path: Path, block: str, start: str = START, end: str = END) -> None:
    """Replace (or append) the marked block in ``path``."""
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block.rstrip("\n") + rest.split(end, 1)[1]
    else:
        notes = text.find("## Notes")
        text = text[:notes] + block + "\n" + text[notes:] if notes >= 0 else text + "\n" + block
    path.write_text(text)


def main(
    out: Path = typer.Option(Path("docs/eval.md"), "--out"),
    json_out: Path | None = typer.Option(None, "--json-out"),
    only: list[str] | None = typer.Option(None, "--only", help="folds whose name contains this"),
    from_json: Path | None = typer.Option(None, "--from-json", help="re-render a --json-out file, no training"),
    encoder: str = typer.Option("accurate", "--encoder", help="accurate, fast, or both (train on both, score fast)"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="ridge and kNN beside the prior"),
) -> None:
    results = json.loads(from_json.read_text()) if from_json else run(only, encoder=encoder, baselines=baselines)
    if json_out and not from_json:
        json_out.write_text(json.dumps(results, indent=1, default=float))
    if only:
        return
    if any("prior_tiered" in r for r in results):  # --encoder both: the tiers' table
        write_block(out, render_tiers(results), TIERS_START, TIERS_END)
    else:
        write_block(out, render(results))


if __name__ == "__main__":
    typer.run(main)
