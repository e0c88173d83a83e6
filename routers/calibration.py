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


def strong_share_threshold(meta: dict[str, Any], share: float) -> float:
    """Threshold on ``strong_win`` for a router artifact's stored calibration."""
    cal = meta.get("calibration", {})
    qs = cal.get("strong_win")
    if not qs:
        raise ValueError(f"router {meta.get('kind')} has no strong_win calibration")
    return threshold_for_share(qs, share)
