"""Training-side evaluation: RouteLLM pair metrics and RouterBench AIQ, beside baselines.

Every routing decision goes through :func:`routers.decision.choose`, the function the gateway
uses, so offline numbers describe live behaviour.

- Pair data (strong/weak): rank prompts by ``strong_win`` and sweep the threshold (i.e. every
  strong-call share). PGR(share) = (quality - q_weak) / (q_strong - q_weak).
  **APGR** = mean PGR over share in [0, 1]; **CPT(x%)** = smallest strong-call share whose PGR
  reaches x. Baselines: random router (PGR = share: APGR 0.5, CPT(x) = x), both single
  models, oracle (strong only where it alone is right).
- Many models with costs: sweep ``Objective("cost_weight", lambda)`` over a lambda grid; each
  lambda gives a (mean realised cost, mean quality) point. **AIQ** = area under the
  non-decreasing upper convex hull of the points over the cost range of the single models
  [cheapest, most expensive], divided by that range (flat after the router's last point, 0
  before its first). Baselines: random router (seeded uniform quality through ``choose``),
  every single model, the zero router (hull of the single models), the oracle (cheapest
  model that gets each item right).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import RouterScores
from .data import RoutingTable
from .decision import Objective, choose
from .identities import find_model
from .runtime import pair_strong_win

LAMBDAS = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 61)])


# ------------------------------------------------------------------------------- pair
def pair_curve(score: np.ndarray, q_strong: np.ndarray, q_weak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(strong share, mean quality) when the top-k prompts by ``score`` go to strong, k=0..n.

    Equal scores are treated as one block (a threshold cannot split them); within a
    block the quality is interpolated linearly, i.e. the expectation over tie orders.
    """
    n = len(score)
    order = np.argsort(-score, kind="stable")
    gain = (q_strong - q_weak)[order]
    cum = np.concatenate([[0.0], np.cumsum(gain)])
    s_sorted = score[order]
    # block ends: positions where the next score differs
    ends = np.concatenate([np.flatnonzero(np.diff(s_sorted) != 0) + 1, [n]])
    ks = np.concatenate([[0], ends])
    share = ks / n
    qual = (q_weak.sum() + cum[ks]) / n
    return share, qual


def pair_metrics(score: np.ndarray, q_strong: np.ndarray, q_weak: np.ndarray) -> dict[str, float]:
    share, qual = pair_curve(np.asarray(score, np.float64), q_strong, q_weak)
    qs, qw = q_strong.mean(), q_weak.mean()
    span = qs - qw if abs(qs - qw) > 1e-12 else 1e-12
    pgr = (qual - qw) / span
    grid = np.linspace(0, 1, 1001)
    pgr_g = np.interp(grid, share, pgr)
    apgr = float(np.trapezoid(pgr_g, grid))

    def cpt(x: float) -> float:
        hit = np.flatnonzero(pgr_g >= x - 1e-12)
        return float(grid[hit[0]]) if len(hit) else 1.0

    return {
        "apgr": apgr,
        "cpt50": cpt(0.5),
        "cpt80": cpt(0.8),
        "max_quality": float(qual.max()),
        "q_strong": float(qs),
        "q_weak": float(qw),
    }


def pair_baselines(q_strong: np.ndarray, q_weak: np.ndarray) -> dict[str, dict[str, float]]:
    oracle = pair_metrics(q_strong - q_weak, q_strong, q_weak)
    qs, qw = float(q_strong.mean()), float(q_weak.mean())
    return {
        "random": {"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8, "max_quality": qs},
        "oracle": oracle,
        "strong_only": {"quality": qs, "strong_share": 1.0},
        "weak_only": {"quality": qw, "strong_share": 0.0},
    }


# ------------------------------------------------------------------------- many models
def expected_costs(meta: dict[str, Any], table: RoutingTable) -> np.ndarray:
    """Per-model expected USD cost the router decides with: router.json's typical cost,
    else the evaluation table's mean cost for that model (0 when unknown)."""
    typical = meta.get("typical_cost_usd") or {}
    with np.errstate(all="ignore"):
        table_mean = np.nanmean(table.cost, axis=0) if len(table) else np.zeros(len(table.models))
    out = []
    for j, m in enumerate(table.models):
        key = find_model(m, list(typical), meta.get("aliases"))
        v = typical[key] if key is not None else table_mean[j]
        out.append(float(v) if np.isfinite(v) else 0.0)
    return np.array(out)


def sweep(
    quality_pred: np.ndarray,
    exp_cost: np.ndarray,
    models: Sequence[str],
    real_q: np.ndarray,
    real_c: np.ndarray,
    lambdas: np.ndarray = LAMBDAS,
) -> np.ndarray:
    """(lambda, mean cost, mean quality) for each ``cost_weight`` lambda, via ``choose``."""
    models = list(models)
    col = {m: j for j, m in enumerate(models)}
    cost_map = dict(zip(models, exp_cost.tolist()))
    rq = np.nan_to_num(real_q, nan=0.0)
    rc = np.nan_to_num(real_c, nan=0.0)
    pts = []
    rows = range(len(quality_pred))
    qdicts = [dict(zip(models, quality_pred[i].tolist())) for i in rows]
    for lam in lambdas:
        obj = Objective("cost_weight", float(lam))
        picks = np.array([col[choose(qdicts[i], cost_map, obj).model] for i in rows])
        idx = np.arange(len(picks))
        pts.append((float(lam), float(rc[idx, picks].mean()), float(rq[idx, picks].mean())))
    return np.array(pts)


def upper_hull(points: np.ndarray) -> np.ndarray:
    """Non-decreasing upper convex hull of (cost, quality) points, sorted by cost."""
    p = np.unique(np.round(np.asarray(points, np.float64), 15), axis=0)
    p = p[np.lexsort((-p[:, 1], p[:, 0]))]
    # keep points that improve quality as cost grows (Pareto front)
    front, best = [], -np.inf
    for c, q in p:
        if q > best + 1e-15:
            front.append((c, q))
            best = q
    hull: list[tuple[float, float]] = []
    for pt in front:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (pt[1] - y1) - (y2 - y1) * (pt[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(pt)
    return np.array(hull)


def aiq(points: np.ndarray, c_min: float, c_max: float) -> float:
    """Area under the upper hull over [c_min, c_max] divided by (c_max - c_min)."""
    h = upper_hull(points)
    if c_max <= c_min or not len(h):
        return float(h[:, 1].max()) if len(h) else 0.0
    grid = np.linspace(c_min, c_max, 2001)
    f = np.interp(grid, h[:, 0], h[:, 1], left=0.0, right=h[-1, 1])
    f[grid < h[0, 0]] = 0.0
    return float(np.trapezoid(f, grid) / (c_max - c_min))


def many_baselines(table: RoutingTable, exp_cost: np.ndarray, seed: int = 0) -> dict[str, Any]:
    q = np.nan_to_num(table.quality, nan=0.0)
    c = np.nan_to_num(table.cost, nan=0.0)
    single = {m: {"cost": float(c[:, j].mean()), "quality": float(q[:, j].mean())} for j, m in enumerate(table.models)}
    pts = np.array([[v["cost"], v["quality"]] for v in single.values()])
    c_min, c_max = float(pts[:, 0].min()), float(pts[:, 0].max())
    rng = np.random.default_rng(seed)
    rand_pts = sweep(rng.random(q.shape), exp_cost, table.models, table.quality, table.cost)
    # oracle: cheapest model that gets the item right (best quality, then cheapest)
    best = q.max(axis=1, keepdims=True)
    ok = q >= best - 1e-12
    oc = np.where(ok, c, np.inf).min(axis=1)
    oracle_pt = np.array([[oc.mean(), best.mean()]])
    cheapest = pts[np.argmin(pts[:, 0])][None, :]
    return {
        "cost_range": [c_min, c_max],
        "single": {
            m: {**v, "aiq": aiq(np.array([[v["cost"], v["quality"]]]), c_min, c_max)} for m, v in single.items()
        },
        "zero": {"aiq": aiq(pts, c_min, c_max)},
        "random": {"aiq": aiq(rand_pts[:, 1:], c_min, c_max), "points": rand_pts[:, 1:].tolist()},
        "oracle": {
            "aiq": aiq(np.vstack([cheapest, oracle_pt]), c_min, c_max),
            "cost": float(oracle_pt[0, 0]),
            "quality": float(oracle_pt[0, 1]),
        },
    }


# ----------------------------------------------------------------------------- entry
def _same_model(name: str | None, other: str, aliases: dict[str, str]) -> bool:
    return name is not None and find_model(name, [other], aliases) is not None


def strong_win_of(scores: RouterScores, table: RoutingTable, meta: dict) -> tuple[np.ndarray, int, int] | None:
    strong, weak = meta.get("strong") or scores.strong, meta.get("weak") or scores.weak
    aliases = meta.get("aliases") or {}
    if strong is not None and weak is not None:  # the data's spelling of the router's pair
        strong = find_model(strong, table.models, aliases) or strong
        weak = find_model(weak, table.models, aliases) or weak
    if strong is None or weak is None:
        if len(table.models) != 2:
            return None
        mean = np.nanmean(table.quality, axis=0)
        strong, weak = table.models[int(np.argmax(mean))], table.models[int(np.argmin(mean))]
    if strong not in table.models or weak not in table.models:
        return None
    js, jw = table.models.index(strong), table.models.index(weak)
    same = _same_model(scores.strong, strong, aliases) and _same_model(scores.weak, weak, aliases)
    if scores.strong_win is not None and same:
        sw = np.asarray(scores.strong_win, np.float64)
    else:
        q = align(scores, table.models, aliases)
        sw = pair_strong_win(q, js, jw)
    return sw, js, jw


def align(scores: RouterScores, models: Sequence[str], aliases: dict[str, str] | None = None) -> np.ndarray:
    """Router quality columns reordered to ``models`` (NaN for models the router lacks); a model
    the router knows under another name (``routers.identities``, the router's ``aliases``) counts."""
    out = np.full((len(scores.quality), len(models)), np.nan, np.float32)
    for j, m in enumerate(models):
        src = find_model(m, scores.models, aliases)
        if src is not None:
            out[:, j] = scores.quality[:, scores.models.index(src)]
    return out


def shared_models(data_models: Sequence[str], router_models: Sequence[str], aliases: dict[str, str]) -> list[str]:
    """The data's models (its names, its order) that the router scores, matched by identity."""
    return [m for m in data_models if find_model(m, list(router_models), aliases) is not None]


def evaluate_scores(
    table: RoutingTable, scores: RouterScores, meta: dict, with_baselines: bool = False, points: bool = False
) -> dict[str, Any]:
    """Metrics of one router's scores on ``table`` (pair metrics and/or AIQ)."""
    res: dict[str, Any] = {"rows": len(table)}
    pair = strong_win_of(scores, table, meta)
    if pair is not None:
        sw, js, jw = pair
        qs, qw = np.nan_to_num(table.quality[:, js]), np.nan_to_num(table.quality[:, jw])
        res["pair"] = {"strong": table.models[js], "weak": table.models[jw], **pair_metrics(sw, qs, qw)}
        if with_baselines:
            res["pair_baselines"] = pair_baselines(qs, qw)
    aliases = meta.get("aliases") or {}
    common = shared_models(table.models, scores.models, aliases)
    # AIQ compares the router's choices among the data's models: it needs costs and two of them
    if np.isfinite(table.cost).any() and len(table.models) > 2 and len(common) >= 2:
        sub = table.select_models(common)
        exp_cost = expected_costs(meta, sub)
        pts = sweep(align(scores, common, aliases), exp_cost, common, sub.quality, sub.cost)
        base = many_baselines(sub, exp_cost)
        c_min, c_max = base["cost_range"]
        res["many"] = {"aiq": aiq(pts[:, 1:], c_min, c_max), "models": len(common)}
        if points:
            res["many"]["points"] = pts[:, 1:].tolist()
        if with_baselines:
            res["many_baselines"] = base
    return res


class NoMetricError(ValueError):
    """The router and the data share neither its strong/weak pair nor two models with costs."""


def require_metric(res: dict[str, Any], router_models: Sequence[str] = (), data_models: Sequence[str] = ()) -> None:
    """Raise :class:`NoMetricError` when ``evaluate_scores`` found nothing to score, naming the
    router's and the data's models (a pair router evaluated on data without its pair)."""
    if "pair" in res or "many" in res:
        return
    seen = f" (the router scores {_names(router_models)}; the data has {_names(data_models)})" if data_models else ""
    raise NoMetricError(
        "the router and the data share neither its strong/weak pair nor two or more models with costs, "
        f"so there is nothing to score{seen}"
    )


def _names(models: Sequence[str], most: int = 6) -> str:
    more = f" and {len(models) - most} more" if len(models) > most else ""
    return ", ".join(list(models)[:most]) + more


def plot_title(report: dict[str, Any]) -> str:
    """The metric in one line per kind: APGR beside random/oracle, AIQ beside the zero router/random."""
    name, lines = report.get("name", "router"), []
    if "pair" in report:
        p, b = report["pair"], report.get("pair_baselines", {})
        oracle = f", oracle {b['oracle']['apgr']:.3f}" if "oracle" in b else ""
        pair = f"{p['strong'].split('/')[-1]} vs {p['weak'].split('/')[-1]}"
        lines += [f"{name}: APGR {p['apgr']:.3f} (random 0.500{oracle})", pair]
    if "many" in report:
        m, b = report["many"], report.get("many_baselines", {})
        base = f" (zero router {b['zero']['aiq']:.4f}, random {b['random']['aiq']:.4f})" if b else ""
        lines.append(f"{name}: AIQ {m['aiq']:.4f}{base}, {m['models']} models")
    rows = report.get("rows")
    if rows is not None and lines:
        lines[-1] += f", {rows} rows"
    return "\n".join(lines)


def figure(report: dict[str, Any]) -> Any:
    """The report's plot as a matplotlib Figure: the curve, the baselines, a title with the metric.

    Pair routers: quality against the share of strong-model calls, beside the random line. Many
    models: the router's cost-quality hull beside the zero router (the hull of the single models),
    the random router's hull, the oracle and each single model. Every name is in the legend, which
    sits outside the axes, so no label covers a line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    name = report.get("name", "router")
    if "curve" in report:
        share, qual = report["curve"]
        ax.plot(share, qual, label=name)
        pb = report["pair_baselines"]
        ax.plot([0, 1], [pb["weak_only"]["quality"], pb["strong_only"]["quality"]], "--", label="random")
        ax.set_xlabel("strong-model call share")
    if "many" in report and "points" in report["many"]:
        base = report["many_baselines"]
        h = upper_hull(np.array(report["many"]["points"]))
        ax.plot(h[:, 0], h[:, 1], "-o", ms=3, lw=1.8, label=f"{name} (hull)", zorder=3)
        single = np.array([[v["cost"], v["quality"]] for v in base["single"].values()])
        ax.plot(*upper_hull(single).T, "--", color="0.35", label="zero router (hull of single models)")
        ax.plot(*upper_hull(np.array(base["random"]["points"])).T, ":", color="0.5", label="random (hull)")
        markers = "os^vD<>pPXh*"
        for i, (m, v) in enumerate(base["single"].items()):
            ax.scatter([v["cost"]], [v["quality"]], s=22, marker=markers[i % len(markers)], label=m.split("/")[-1])
        ax.scatter([base["oracle"]["cost"]], [base["oracle"]["quality"]], marker="*", s=90, c="k", label="oracle")
        ax.set_xscale("log")
        ax.set_xlabel("mean cost per request (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title(plot_title(report), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def plot(report: dict[str, Any], path: str) -> None:
    """Write the report's plot (``figure``) as a PNG."""
    import matplotlib.pyplot as plt

    fig = figure(report)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
