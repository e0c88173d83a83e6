"""The publish gate: score current and candidate routers on the held-back slice, decide.

Feedback labels only the served model of each request, so the gate compares the routers'
predicted quality for the served model with the feedback score on the held-back (newest)
requests: **Brier** score (mean squared error; the primary metric, lower is better), log
loss and ROC AUC (binary feedback). ``choose`` consumes exactly these predictions, so a
better-calibrated, better-ranking prediction is a better decision input. Where the held-back
slice also carries full per-model labels (``full_quality``), the routers' own evaluation
(RouteLLM APGR/CPT for pairs, RouterBench AIQ for many models) is added to the report.

A router whose per-model quality is only relative (the Hybrid-LLM cascade: strong = 1 on every
prompt, weak = P(the cheap answer is good enough)) does not predict the feedback score, so its
Brier says nothing about its decisions: :func:`relative` tells ``retrain`` to leave such a
comparison to the counterfactual A/B.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def relative(router: Any, emb: np.ndarray) -> bool:
    """Whether ``router``'s per-model quality on ``emb`` is relative, not a prediction of the
    feedback score: the cascade, and an adaptation of it whose head changes nothing there (it
    kept the cascade; a later "keep" composed on an earlier head still predicts)."""
    if getattr(router, "relative_quality", False):
        return True
    base = getattr(router, "base", None)
    if base is None or not relative(base, emb):
        return False
    alpha = np.asarray(getattr(router, "alpha", 1.0), float)
    delta = np.asarray(router.run(np.asarray(emb, np.float32))["delta"], float)
    return bool(np.allclose(alpha, 1.0) and (delta.size == 0 or np.abs(delta).max() < 1e-6))


def served_predictions(router: Any, emb: np.ndarray, models: list[str], served: np.ndarray) -> np.ndarray:
    out = router.score(emb)
    cols = [out.models.index(m) if m in out.models else -1 for m in models]
    q = np.asarray(out.quality, float)
    p = np.array([q[i, cols[s]] if cols[s] >= 0 else np.nan for i, s in enumerate(served)])
    return np.clip(p, 1e-4, 1 - 1e-4)


def auc(p: np.ndarray, y: np.ndarray) -> float | None:
    pos, neg = p[y >= 0.5], p[y < 0.5]
    if not len(pos) or not len(neg):
        return None
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]), kind="stable"), kind="stable") + 1.0
    # ties: average ranks
    allp = np.concatenate([pos, neg])
    for v in np.unique(allp):
        sel = allp == v
        if sel.sum() > 1:
            ranks[sel] = ranks[sel].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def prediction_metrics(p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    ok = np.isfinite(p)
    p, y = p[ok], y[ok]
    return {
        "rows": int(len(y)),
        "brier": float(np.mean((p - y) ** 2)) if len(y) else None,
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else None,
        "auc": auc(p, y),
        "mean_prediction": float(p.mean()) if len(p) else None,
        "mean_feedback": float(y.mean()) if len(y) else None,
    }


def decide(current: dict, candidate: dict, margin: float, metric: str = "brier") -> tuple[bool, str]:
    """Publish only when the candidate beats the current router by ``margin`` on ``metric`` (lower is better)."""
    a, b = current.get(metric), candidate.get(metric)
    if a is None or b is None:
        return False, f"{metric} unavailable on the held-back slice"
    gain = a - b
    if gain >= margin:
        return True, f"{metric} {a:.4f} -> {b:.4f} (better by {gain:.4f} >= margin {margin})"
    return False, f"{metric} {a:.4f} -> {b:.4f} (better by {gain:.4f} < margin {margin})"
