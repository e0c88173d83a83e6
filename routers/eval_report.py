"""Write ``docs/eval.md``: every family beside the baselines on held-out data.

    HF_HUB_OFFLINE=1 .venv/bin/python -m routers.eval_report [--folds 5] [--out docs/eval.md]

Every family is trained on a training split and evaluated on the held-out rest. MMLU pair:
5-fold cross-validation two ways, over rows (unseen questions from the subjects it was
trained on) and over whole subjects (unseen topics; every subject is held out once).
RouterBench: 20% of sample_ids, seed 0, as in the shipped artifacts' router.json.
Transfer: each pair family trained on all of MMLU, scored on RouterBench's other benchmarks
against the same two models' outcomes there.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .data import default_paths, holdout_split, load_table
from .evaluate import evaluate_scores, pair_metrics

PAIR_FAMILIES = ["mf", "cascade", "cost", "cluster", "knn", "random"]
MANY_FAMILIES = ["cost", "cluster", "knn", "mf", "cascade", "random"]
HOLDOUT = 0.2
NOTES_MARK = "## Notes"
LODO_START, LODO_END = "<!-- lodo:start -->", "<!-- lodo:end -->"  # routers.lodo's block


PAIR_SPLITS = ("row", "group")


def _run(
    kind: str, table, seed: int, tmp: Path, split: str = "group", fold: tuple[int, int] | None = None
) -> dict[str, Any]:
    from .base import load_router
    from .train import table_embeddings, train_router

    out = tmp / f"{kind}-{table.fmt}-{seed}-{split}-{fold}"
    t0 = time.time()
    train_router(kind, table, out, holdout=HOLDOUT, seed=seed, split=split, fold=fold)
    _, te = holdout_split(table, HOLDOUT, seed, split, fold)
    test = table.subset(te)
    router = load_router(out)
    rep = evaluate_scores(test, router.score(table_embeddings(test)), router.meta, with_baselines=True)
    rep["train_seconds"] = time.time() - t0
    return rep


# RouterBench's names for the MMLU pair (GPT-4-1106 vs Mixtral-8x7B), for the transfer check.
TRANSFER_PAIR = ("gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat")


def transfer(kind: str, mmlu, rb, tmp: Path) -> dict[str, dict[str, float]]:
    """Train ``kind`` on every MMLU row, then score RouterBench's prompts (other benchmarks:
    ARC, MBPP, Winogrande) and compute pair metrics per task on RouterBench's own GPT-4-1106 and
    Mixtral outcomes, i.e. the same model pair on benchmarks the router never saw. Rows missing
    either outcome are skipped; the task is the ``sample_id`` prefix (``arc-challenge.test.12``)."""
    from .base import load_router
    from .train import table_embeddings, train_router

    out = tmp / f"{kind}-transfer"
    train_router(kind, mmlu, out, seed=0)
    strong_win = load_router(out).score(table_embeddings(rb)).strong_win
    if strong_win is None:
        raise ValueError(f"the {kind} router gives no strong_win for the transfer pair")
    s, w = rb.models.index(TRANSFER_PAIR[0]), rb.models.index(TRANSFER_PAIR[1])
    ok = np.isfinite(rb.quality[:, [s, w]]).all(axis=1)
    task = np.array([g.split(".")[0] for g in rb.groups])
    res = {}
    for t in sorted(set(task.tolist())):
        m = ok & (task == t)
        res[t] = {**pair_metrics(strong_win[m], rb.quality[m, s], rb.quality[m, w]), "rows": int(m.sum())}
    return res


def subject_oracle(table, test_idx: np.ndarray) -> dict[str, float]:
    """Pair metrics of a bound, not a router: each held-out prompt scored by the true mean
    quality gap of its subject **on the held-out rows themselves** (it reads the test labels).
    No router that can only tell subjects apart can beat it."""
    from .export import pair_of

    pair = pair_of(table)
    if pair is None:
        raise ValueError("the subject bound needs a two-model table")
    strong, weak = pair
    js, jw = table.models.index(strong), table.models.index(weak)
    qs, qw = np.nan_to_num(table.quality[test_idx, js]), np.nan_to_num(table.quality[test_idx, jw])
    groups = np.array([table.groups[i] for i in test_idx])
    gap = qs - qw
    score = np.zeros(len(test_idx))
    for g in set(groups.tolist()):
        score[groups == g] = gap[groups == g].mean()
    return pair_metrics(score, qs, qw)


def main(
    folds: int = typer.Option(5, "--folds", help="MMLU: k-fold cross-validation over rows and over subjects"),
    out: Path = typer.Option(Path("docs/eval.md"), "--out"),
    json_out: Path | None = typer.Option(None, "--json-out", help="also write the raw results"),
) -> None:
    from rich.console import Console

    con = Console(stderr=True)
    results: dict[str, Any] = {"pair": {}, "pair_row": {}, "many": {}, "subject_oracle": {}, "transfer": {}}
    mmlu = load_table(default_paths("routellm"), "routellm")
    rb = load_table(default_paths("routerbench"), "routerbench")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for split in PAIR_SPLITS:
            key = "pair_row" if split == "row" else "pair"
            for i in range(folds):
                for kind in PAIR_FAMILIES:
                    con.print(f"mmlu {split} split, fold {i + 1}/{folds}: {kind}")
                    results[key].setdefault(kind, {})[i] = _run(kind, mmlu, 0, tmp, split, (i, folds))
                _, te = holdout_split(mmlu, HOLDOUT, 0, split, (i, folds))
                results["subject_oracle"].setdefault(key, {})[i] = subject_oracle(mmlu, te)
        for kind in MANY_FAMILIES:
            con.print(f"routerbench seed 0: {kind}")
            results["many"][kind] = _run(kind, rb, 0, tmp)
        for kind in PAIR_FAMILIES:
            con.print(f"transfer (all MMLU -> RouterBench tasks): {kind}")
            results["transfer"][kind] = transfer(kind, mmlu, rb, tmp)
    if json_out:
        json_out.write_text(json.dumps(results, indent=1, default=float))
    text = render_markdown(results, list(range(folds)))
    old = out.read_text() if out.exists() else ""
    if LODO_START in old and LODO_END in old:  # keep the leave-one-data-set-out block (routers.lodo)
        text += old[old.index(LODO_START) : old.index(LODO_END) + len(LODO_END)] + "\n\n"
    if NOTES_MARK in old:  # keep the hand-written notes
        text += old[old.index(NOTES_MARK) :]
    out.write_text(text)
    con.print(f"wrote {out}")


def render_markdown(results: dict[str, Any], folds: list[int]) -> str:
    lines = [
        "# Router evaluation",
        "",
        "Reproduce (about 4 minutes on 2 CPU cores once the embeddings are cached in ~/.cache/shunter: 72 trainings; the first run embeds ~15k prompts, about 5 more minutes):",
        "",
        "```",
        "HF_HUB_OFFLINE=1 .venv/bin/python -m routers.eval_report",
        "```",
        "",
        "Every number is on **held-out** data. MMLU (routellm-mmlu, GPT-4-1106 vs Mixtral-8x7B)",
        "is cross-validated two ways, 5 folds each (seeded): over rows (new questions on the",
        "subjects the router was trained on) and over whole subjects (topics it never saw; every",
        "subject is held out once). RouterBench holds out 20% of sample_ids. Every family is",
        "retrained on each training split; the shipped artifacts are refit on all rows. Routing",
        "decisions go through `routers.decision.choose`, the gateway's decision function.",
        "",
        "APGR: area under the performance-gap-recovered curve over the strong-call share (random",
        "= 0.5). CPT(x%): strong-call share needed to recover x% of the gap (lower is better).",
        "Quality-only families rank prompts by their predicted quality gap.",
        "",
        "## MMLU pair, held-out rows (unseen questions, seen subjects)",
        "",
    ]
    lines += _pair_table(results["pair_row"], folds, results.get("subject_oracle", {}).get("pair_row"))
    lines += ["", "## MMLU pair, held-out subjects (unseen topics)", ""]
    lines += _pair_table(results["pair"], folds, results.get("subject_oracle", {}).get("pair"))
    lines += [
        "",
        "## RouterBench, 11 models: AIQ (held-out 20% of sample_ids, seed 0)",
        "",
        "AIQ: area under the non-decreasing convex hull of (mean cost, mean quality) points swept",
        'over `Objective("cost_weight", lambda)`, divided by the single models\' cost range.',
        "Pair-only families (cascade) route between GPT-4 and the cheapest model only.",
        "",
        "| router | AIQ | models |",
        "|---|---|---|",
    ]
    many = results["many"]
    base = None
    for kind, rep in many.items():
        if "many" in rep:
            lines.append(f"| {kind} | {rep['many']['aiq']:.4f} | {rep['many']['models']} |")
            if rep["many"]["models"] == 11:
                base = rep["many_baselines"]
        elif "pair" in rep:
            lines.append(f"| {kind} | (pair only; APGR {rep['pair']['apgr']:.3f}) | 2 |")
    if base:
        lines.append(f"| *zero router (hull of single models)* | {base['zero']['aiq']:.4f} | 11 |")
        lines.append(f"| *random* | {base['random']['aiq']:.4f} | 11 |")
        lines.append(
            f"| *oracle* | {base['oracle']['aiq']:.4f} (cost ${base['oracle']['cost']:.6f}, quality {base['oracle']['quality']:.3f}) | 11 |"
        )
        lines += ["", "| single model | mean cost $ | quality | AIQ |", "|---|---|---|---|"]
        for m, v in base["single"].items():
            lines.append(f"| {m} | {v['cost']:.6f} | {v['quality']:.3f} | {v['aiq']:.4f} |")
    if results.get("transfer"):
        lines += ["", *_transfer_table(results["transfer"])]
    lines += ["", ""]  # a blank line before the hand-written notes
    return "\n".join(lines)


def _transfer_table(tr: dict[str, Any]) -> list[str]:
    tasks = list(next(iter(tr.values())))
    lines = [
        "## Transfer: trained on MMLU, routed on other benchmarks",
        "",
        "Each pair family trained on every MMLU row, then scoring RouterBench's prompts: APGR on",
        "RouterBench's own outcomes of the same two models (GPT-4-1106 vs Mixtral-8x7B), per task.",
        "",
        "| router | " + " | ".join(tasks) + " | **mean** |",
        "|" + "---|" * (len(tasks) + 2),
    ]
    for kind, per in tr.items():
        ap = [per[t]["apgr"] for t in tasks]
        lines.append(f"| {kind} | " + " | ".join(f"{a:.3f}" for a in ap) + f" | **{np.mean(ap):.3f}** |")
    any_kind = next(iter(tr.values()))
    lines += [
        "",
        "Rows and single-model accuracy (strong / weak) per task: "
        + "; ".join(
            f"{t} {any_kind[t]['rows']} rows, {any_kind[t]['q_strong']:.3f} / {any_kind[t]['q_weak']:.3f}"
            for t in tasks
        )
        + ".",
    ]
    return lines


def _pair_table(pair: dict[str, Any], folds: list[int], subject_bound: dict | None = None) -> list[str]:
    head = "| router | " + " | ".join(f"APGR f{f + 1}" for f in folds) + " | **APGR mean** | CPT(50%) | CPT(80%) |"
    lines = [head, "|" + "---|" * (len(folds) + 4)]

    def row(name: str, reps: list[dict[str, Any]]) -> str:
        ap = [r["apgr"] for r in reps]
        c50, c80 = np.mean([r["cpt50"] for r in reps]), np.mean([r["cpt80"] for r in reps])
        return (
            f"| {name} | " + " | ".join(f"{a:.3f}" for a in ap) + f" | **{np.mean(ap):.3f}** | {c50:.1%} | {c80:.1%} |"
        )

    for kind, by_fold in pair.items():
        lines.append(row(kind, [by_fold[f]["pair"] for f in folds]))
    any_kind = next(iter(pair.values()))
    lines.append("| *random (baseline)* | " + " | ".join("0.500" for _ in folds) + " | 0.500 | 50.0% | 80.0% |")
    lines.append(row("*oracle*", [any_kind[f]["pair_baselines"]["oracle"] for f in folds]))
    if subject_bound:
        lines.append(
            row(
                "*subject bound* (held-out subject's true mean gap; reads the test labels)",
                [subject_bound[f] for f in folds],
            )
        )
    lines.append("")
    strong = np.mean([any_kind[f]["pair_baselines"]["strong_only"]["quality"] for f in folds])
    weak = np.mean([any_kind[f]["pair_baselines"]["weak_only"]["quality"] for f in folds])
    lines.append(
        f"Single models on the held-out rows (mean over folds): strong {strong:.3f}, weak {weak:.3f} accuracy. "
        "CPT columns are means over the folds."
    )
    return lines


if __name__ == "__main__":
    typer.run(main)
