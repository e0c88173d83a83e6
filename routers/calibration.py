"""Calibration quantiles stored in router.json, and ``target_strong_share`` -> threshold."""

from __future__ import annotations

from typing import Any

import numpy as np

LEVELS = np.linspace(0.0, 1.0, 101)


def quantiles(scores: np.ndarray) -> list[float]:
    """Quantiles of ``scores`` at 0%, 1%, ..., 100% (the router.json ``calibration`` lists)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    return [float(v) for v in np.quantile(s, LEVELS)] if len(s) else []


def threshold_for_share(qs: list[float], share: float) -> float:
    """The threshold on a score that sends ``share`` of prompts to strong (score >= threshold).

    ``qs`` are the stored quantiles at 0..100%; interpolated at level ``1 - share``.
    """
    share = float(np.clip(share, 0.0, 1.0))
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
