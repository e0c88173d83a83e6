"""Training-side: evaluate an artifact on a data set and render the result (``shunter eval``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import load_router
from .data import group_split, load_table
from .evaluate import evaluate_scores, pair_curve, require_metric, strong_win_of
from .train import table_embeddings

IN_SAMPLE_REFUSE = 0.5  # refuse when at least this share of the evaluated rows was trained on


class InSampleError(ValueError):
    """The evaluated rows are (mostly) rows the router was trained on."""


def evaluate_artifact(
    router_dir: str | Path,
    data: Sequence[str | Path] | str | Path,
    fmt: str,
    holdout: float = 0.0,
    seed: int = 0,
    split: str = "group",
    progress: bool = False,
    in_sample: bool = False,
) -> dict[str, Any]:
    """Metrics of a router artifact on (the held-out groups of) a data set, with baselines.

    ``progress``: a bar (count, ETA) while prompts not in the embedding cache are embedded.
    Raises :class:`InSampleError` when at least half of the evaluated rows are rows the router
    was trained on (``routers.export.training_overlap``), unless ``in_sample`` is given.
    """
    from .export import training_overlap

    router = load_router(router_dir)
    table = load_table(data, fmt)
    if holdout > 0:
        _, te = group_split(table, holdout, seed, by=split)
        table = table.subset(te)
    overlap = training_overlap(router.meta, table)
    if overlap["share"] >= IN_SAMPLE_REFUSE and not in_sample:
        raise InSampleError(
            f"{router_dir} was trained on these rows ({overlap['share']:.0%} of the evaluated prompts, "
            f"by {overlap['by']}): its figures here would be in-sample, not a test. Evaluate on data it "
            "was not trained on, or train with --holdout and evaluate the same --holdout/--split/--seed; "
            "pass --in-sample to see in-sample figures anyway."
        )
    emb = table_embeddings(table, progress=progress)
    scores = router.score(emb)
    rep = evaluate_scores(table, scores, router.meta, with_baselines=True, points=True)
    require_metric(rep, scores.models, table.models)
    rep["name"] = f"{router.meta['kind']}:{Path(router_dir).name}"
    rep["data"] = {"format": fmt, "rows": len(table), "holdout": holdout, "split": split, "seed": seed}
    rep["training_overlap"] = overlap
    pair = strong_win_of(scores, table, router.meta)
    if pair is not None:
        sw, js, jw = pair
        share, qual = pair_curve(sw, np.nan_to_num(table.quality[:, js]), np.nan_to_num(table.quality[:, jw]))
        rep["curve"] = (share.tolist(), qual.tolist())
    return rep


def render(rep: dict[str, Any]) -> None:
    """Print a report as rich tables (router beside baselines)."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    share = (rep.get("training_overlap") or {}).get("share", 0.0)
    if share > 0:
        con.print(
            f"[bold red]IN-SAMPLE: the router was trained on {share:.0%} of these rows; "
            "these figures overstate how it routes prompts it has not seen.[/]"
        )
    con.print(f"[bold]{rep['name']}[/] on {rep['data']['format']} ({rep['rows']} rows)")
    if "pair" in rep:
        p, b = rep["pair"], rep["pair_baselines"]
        t = Table(title=f"pair {p['strong']} vs {p['weak']}")
        for c in ("router", "APGR", "CPT(50%)", "CPT(80%)", "max quality"):
            t.add_column(c)
        t.add_row(
            "this router", f"{p['apgr']:.3f}", f"{p['cpt50']:.1%}", f"{p['cpt80']:.1%}", f"{p['max_quality']:.3f}"
        )
        t.add_row("random", "0.500", "50.0%", "80.0%", f"{b['random']['max_quality']:.3f}")
        o = b["oracle"]
        t.add_row("oracle", f"{o['apgr']:.3f}", f"{o['cpt50']:.1%}", f"{o['cpt80']:.1%}", f"{o['max_quality']:.3f}")
        t.add_row("strong only", "", "100%", "100%", f"{b['strong_only']['quality']:.3f}")
        t.add_row("weak only", "", "", "", f"{b['weak_only']['quality']:.3f}")
        con.print(t)
    if "many" in rep:
        m, b = rep["many"], rep["many_baselines"]
        t = Table(title="many models: AIQ (area under cost-quality hull / cost range)")
        for c in ("router", "AIQ", "mean cost $", "quality"):
            t.add_column(c)
        t.add_row("this router", f"{m['aiq']:.4f}", "", "")
        t.add_row("zero router", f"{b['zero']['aiq']:.4f}", "", "")
        t.add_row("random", f"{b['random']['aiq']:.4f}", "", "")
        t.add_row("oracle", f"{b['oracle']['aiq']:.4f}", f"{b['oracle']['cost']:.6f}", f"{b['oracle']['quality']:.3f}")
        for name, v in b["single"].items():
            t.add_row(name, f"{v['aiq']:.4f}", f"{v['cost']:.6f}", f"{v['quality']:.3f}")
        con.print(t)
