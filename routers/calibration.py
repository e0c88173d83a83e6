"""Calibration quantiles stored in router.json: ``target_strong_share`` -> threshold for pair
routers (or any pair of a many-model router), and a target mean cost or top-model share ->
``cost_weight`` for many-model routers."""

from __future__ import annotations

from typing import Any

import numpy as np

LEVELS = np.linspace(0.0, 1.0, 101)


def quantiles(scores: np.ndarray) -> list[float]:
    """Quantiles of ``scores`` at 0%, 1%, ..., 100% (the router.json ``calibration`` lists)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    return [float(v) for v in np.quantile(s, LEVELS)] if len(s) else []


def check_share(share: float, what: str = "share") -> float:
    """``share`` as a float in [0, 1], or a ``ValueError`` that says so."""
    share = float(share)
    if not 0.0 <= share <= 1.0:  # NaN fails too
        raise ValueError(f"{what} must be between 0 and 1 (a fraction of prompts), got {share:g}")
    return share


def threshold_for_share(qs: list[float], share: float) -> float:
    """The threshold on a score that sends ``share`` of prompts to strong (score >= threshold).

    ``qs`` are the stored quantiles at 0..100%; interpolated at level ``1 - share``.
    """
    share = check_share(share, "strong share")
    if share <= 0:
        return float("inf")
    return float(np.interp(1.0 - share, LEVELS, np.asarray(qs, dtype=np.float64)))


def strong_share_threshold(
    meta: dict[str, Any], share: float, strong: str | None = None, weak: str | None = None
) -> float:
    """Threshold on ``strong_win`` sending ``share`` of (training) prompts to strong.

    Uses the stored ``calibration.strong_win`` quantiles of a pair router. For any other
    ``strong``/``weak`` pair of a many-model router, it computes the pair's ``strong_win``
    (``0.5 + (q_strong - q_weak) / 2``, as ``RouterScores`` for quality-only routers) on the
    stored ``calibration.quality_sample`` (predicted quality on up to 512 training prompts).
    """
    cal = meta.get("calibration", {})
    same_pair = (strong is None or strong == meta.get("strong")) and (weak is None or weak == meta.get("weak"))
    qs = cal.get("strong_win") if same_pair else None
    if qs:
        return threshold_for_share(qs, share)
    sample = cal.get("quality_sample")
    models = list(meta.get("models", []))
    strong = strong or meta.get("strong")
    weak = weak or meta.get("weak")
    if sample and strong in models and weak in models:
        q = np.asarray(sample, dtype=np.float64)
        sw = np.clip(0.5 + 0.5 * (q[:, models.index(strong)] - q[:, models.index(weak)]), 0.0, 1.0)
        return threshold_for_share(quantiles(sw), share)
    raise ValueError(f"router {meta.get('kind')} has no strong_win calibration for {strong!r} vs {weak!r}")


# Cost weights tried by ``cost_weight_for`` (0 = best predicted quality whatever the price).
COST_WEIGHTS = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 241)])


def candidate_models(meta: dict[str, Any], models: list[str] | None = None) -> list[str]:
    """The models a many-model calibration chooses among: ``models``, else every model of the
    router with a typical cost, leaving out declared aliases (the same model twice)."""
    known = list(meta.get("models", []))
    if models:
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ValueError(f"not models of this router: {unknown} (it knows: {known})")
        return list(models)
    aliases = meta.get("aliases") or {}
    costs = meta.get("typical_cost_usd") or {}
    return [m for m in known if m in costs and m not in aliases]


def cost_weight_sweep(
    meta: dict[str, Any], models: list[str], costs: dict[str, float] | None = None
) -> list[dict[str, float]]:
    """For each ``cost_weight`` in ``COST_WEIGHTS``: the mean expected cost and the share of
    prompts sent to the most expensive model, when ``routers.decision.choose`` picks among
    ``models`` on the stored ``calibration.quality_sample`` (the reference prompts)."""
    from .decision import Objective, choose

    sample = (meta.get("calibration") or {}).get("quality_sample")
    if not sample:
        raise ValueError(f"router {meta.get('kind')} stores no calibration.quality_sample")
    costs = costs or {m: float((meta.get("typical_cost_usd") or {}).get(m, 0.0)) for m in models}
    missing = [m for m in models if not costs.get(m)]
    if missing or len(models) < 2:
        raise ValueError(f"a cost calibration needs two or more models with a typical cost (missing: {missing})")
    cols = [list(meta["models"]).index(m) for m in models]
    q = np.asarray(sample, np.float64)[:, cols]
    top = max(models, key=lambda m: costs[m])
    rows = [dict(zip(models, r.tolist())) for r in q]
    out = []
    for lam in COST_WEIGHTS:
        picks = [choose(r, costs, Objective("cost_weight", float(lam))).model for r in rows]
        out.append(
            {
                "cost_weight": float(lam),
                "mean_cost": float(np.mean([costs[p] for p in picks])),
                "top_share": float(np.mean([p == top for p in picks])),
            }
        )
    return out


def cost_weight_for(
    meta: dict[str, Any],
    *,
    mean_cost: float | None = None,
    top_share: float | None = None,
    models: list[str] | None = None,
) -> dict[str, Any]:
    """The smallest ``cost_weight`` (the most quality) whose choices on the reference prompts
    cost at most ``mean_cost`` USD per request on average, or send at most ``top_share`` of
    them to the most expensive model. Returns the weight and what it achieves."""
    if (mean_cost is None) == (top_share is None):
        raise ValueError("give exactly one of a target mean cost or a target top-model share")
    if top_share is not None:
        check_share(top_share, "top-model share")
    if mean_cost is not None and not mean_cost > 0:
        raise ValueError(f"target mean cost must be > 0 USD, got {mean_cost:g}")
    cands = candidate_models(meta, models)
    sweep = cost_weight_sweep(meta, cands)
    key, target = ("mean_cost", mean_cost) if mean_cost is not None else ("top_share", float(top_share or 0.0))
    ok = [p for p in sweep if p[key] <= target + 1e-12]
    best = ok[0] if ok else sweep[-1]
    return {**best, "target": {key: target}, "met": bool(ok), "models": cands}
