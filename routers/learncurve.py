"""``shunter learn-curve``: how fast a deployed router learns from judged traffic.

1. The data set's rows are split, seeded, into a *stream* half and an *evaluation* half.
2. The prompts are embedded with the encoder the router pins (MiniLM, or the fast tier's static
   table for a fast-tier router). For each budget ``k`` the first ``k`` stream rows count as
   judged: their recorded outcomes are revealed (per-model scores, as a judge would score each
   model's answer) and the router is adapted by :func:`routers.adapt.adapt`, the code ``shunter retrain`` runs. The whole
   stream half's embeddings (no labels) are the unlabelled traffic it also sees.
3. The adapted artifact is loaded back through the serving path and scored on the evaluation
   half with ``eval``'s metrics: APGR for a strong/weak pair, else RouterBench AIQ.

Budget 0 is the router as shipped (no artifact is written). A budget larger than the stream half
judges the whole stream half (logged), and the result then also lists ``judged``, the rows each
budget had. The result::

    {"metric": "apgr" | "aiq", "budgets": [...], "values": [...], "baseline_random": ...,
     "rows": {"stream": n, "eval": n}}
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .adapt import GRID, Judged, Reg, adapt
from .base import load_router
from .data import RoutingTable, load_table
from .evaluate import evaluate_scores, require_metric, shared_models, strong_win_of
from .train import table_embeddings


def stream_eval_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded permutation of ``n`` rows: first half (rounded down) the stream, the rest evaluation."""
    perm = np.random.default_rng(seed).permutation(n)
    half = n // 2
    return perm[:half], perm[half:]


def encoder_of(meta: dict[str, Any]) -> Any:
    """The encoder whose embeddings the router scores: MiniLM when it pins MiniLM (or nothing),
    else the fast tier's static table when it pins that (a fast-tier router, e.g. ``prior-fast``)."""
    from .base import encoder_hashes
    from .encoder import Encoder

    hashes = encoder_hashes(meta)
    if not hashes or Encoder.default().encoder_hash in hashes:
        return None  # table_embeddings' default: MiniLM
    from .encoders.static import StaticEncoder

    static = StaticEncoder.default()
    if static.encoder_hash in hashes:
        return static
    raise ValueError(f"the router pins encoder(s) {[h[:12] for h in hashes]}, neither MiniLM nor the static table")


def judged_rows(table: RoutingTable, emb: np.ndarray, idx: np.ndarray) -> Judged:
    """Rows ``idx`` with every recorded per-model outcome revealed."""
    return Judged(np.asarray(emb[idx], np.float32), list(table.models), np.asarray(table.quality[idx], float))


def metric_of(
    res: dict[str, Any], router_models: Sequence[str] = (), data_models: Sequence[str] = ()
) -> tuple[str, float, float]:
    """(metric name, value, random router's value) of an ``evaluate_scores`` result."""
    require_metric(res, router_models, data_models)
    if "pair" in res:
        return "apgr", float(res["pair"]["apgr"]), 0.5
    return "aiq", float(res["many"]["aiq"]), float(res["many_baselines"]["random"]["aiq"])


def _scored_models(eval_t: RoutingTable, scores: Any, meta: dict[str, Any]) -> RoutingTable:
    """The evaluation rows cut to the models every budget is scored on.

    A pair metric keeps the table. AIQ is taken over the data's models that the router *as
    shipped* scores, at every budget: ``adapt`` also learns the data's models the router did not
    know, and AIQ over more models has another cost range and random router, so budget 0 and
    budget ``k`` would not be on one scale."""
    if strong_win_of(scores, eval_t, meta) is not None:
        return eval_t
    shared = shared_models(eval_t.models, scores.models, meta.get("aliases") or {})
    return eval_t.select_models(shared) if len(shared) >= 2 else eval_t


def learn_curve(
    router_dir: str | Path,
    data: Sequence[str | Path] | str | Path,
    fmt: str,
    budgets: Sequence[int],
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
    grid: list[Reg] | None = None,
) -> dict[str, Any]:
    """The curve ``learn-curve`` writes. ``grid``: the candidate corrections ``adapt`` chooses
    among (default: ``routers.adapt.GRID``, what ``retrain`` uses; reports compare subsets)."""
    if any(b < 0 for b in budgets):
        raise ValueError("budgets must be >= 0")
    base = load_router(router_dir)  # first: a wrong --router fails before the data is read and embedded
    table = load_table(data, fmt)
    emb = table_embeddings(table, encoder_of(base.meta))
    stream, ev = stream_eval_split(len(table), seed)
    eval_t, eval_e = table.subset(ev), emb[ev]
    shipped = base.score(eval_e)  # budget 0, and which models every budget is scored on
    eval_t = _scored_models(eval_t, shipped, base.meta)
    metric, values, random_v = None, [], None
    judged = [min(int(b), len(stream)) for b in budgets]
    with tempfile.TemporaryDirectory(prefix="learn-curve-") as tmp:
        for b, k in zip(budgets, judged):
            if k < b:
                log(f"budget {b} exceeds the stream half ({len(stream)} rows): all {k} stream rows are judged")
            if k == 0:
                router = base
                chosen = "as shipped"
            else:
                out = Path(tmp) / f"k{k}"
                meta = adapt(
                    router_dir,
                    judged_rows(table, emb, stream[:k]),
                    out,
                    domain_emb=emb[stream],
                    seed=seed,
                    grid=GRID if grid is None else grid,
                )
                router = load_router(out)
                chosen = meta["adaptation"]["chosen"]
            scores = shipped if k == 0 else router.score(eval_e)
            res = evaluate_scores(eval_t, scores, router.meta, with_baselines=True)
            name, value, random_v = metric_of(res, scores.models, table.models)
            if metric is not None and name != metric:
                raise ValueError(f"budget {k}: metric changed from {metric} to {name}")
            metric = name
            values.append(value)
            log(f"budget {k:>5}: {name} {value:.4f} ({chosen})")
    res = {
        "metric": metric,
        "budgets": [int(b) for b in budgets],
        "values": values,
        "baseline_random": random_v,
        "rows": {"stream": int(len(stream)), "eval": int(len(ev))},
    }
    if judged != res["budgets"]:  # only then, so the usual result has exactly the specified keys
        res["judged"] = judged
    return res


def ridge_curve(
    data: Sequence[str | Path] | str | Path,
    fmt: str,
    budgets: Sequence[int],
    seed: int = 0,
    alpha: float = 1.0,
    pair: tuple[str, str] | None = None,
) -> list[float]:
    """The naive baseline on ``learn_curve``'s split: per budget ``k``, one ridge regression per
    model (``alpha``) on the MiniLM embeddings of the first ``k`` stream rows' revealed outcomes,
    no deployed router, scored on the evaluation half (APGR of ``pair`` = (strong, weak), by
    default the data's better and worse model)."""
    from .base import RouterScores
    from .lodo import fit_ridge

    table = load_table(data, fmt)
    emb = table_embeddings(table)
    stream, ev = stream_eval_split(len(table), seed)
    eval_t = table.subset(ev)
    meta = {"strong": pair[0], "weak": pair[1]} if pair else {}
    out = []
    for k in budgets:
        if k == 0:
            out.append(0.5)  # no labels: every prompt scores the same, the random router's APGR
            continue
        q = fit_ridge(emb[stream[:k]], table.quality[stream[:k]], alpha)(emb[ev])
        res = evaluate_scores(eval_t, RouterScores(list(table.models), q), meta, with_baselines=True)
        out.append(metric_of(res)[1])
    return out


def plot_curve(result: dict[str, Any], path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    pts = sorted(zip(result["budgets"], result["values"]))  # --budgets in any order
    ax.plot([b for b, _ in pts], [v for _, v in pts], "-o", label="adapted router")
    if pts[0][0] == 0:
        ax.axhline(pts[0][1], ls=":", c="grey", label="as shipped (budget 0)")
    ax.axhline(result["baseline_random"], ls="--", c="red", label="random router")
    ax.set_xlabel("judged prompts")
    ax.set_ylabel(result["metric"].upper() + f" on {result['rows']['eval']} evaluation rows")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
