"""Offline tier cascade (``shunter score --encoder``, benchmarks): the gateway's rule, batched.

``TieredScorer(tier, router, fast_router, threshold, band).score(texts)`` returns the scores the
gateway's policy would decide on: the fast tier's for every prompt whose decision margin is at
least ``band``, MiniLM's for the rest. ``fast`` and ``accurate`` score every prompt with that
tier alone.

The margin (``routers.decision.choose(...).margin``) is in the objective's units. For a
threshold on ``strong_win`` it is measured in **calibration percentiles** when the router stores
its ``strong_win`` quantiles (every trained router does): ``|F(strong_win) - F(threshold)|``
with ``F`` the router's empirical CDF on its training prompts. Routers spread ``strong_win``
very differently (an mf pair router over 0.52-0.62, a knn one over 0.2-0.9), so a raw band of
0.05 escalates almost everything for one and little for the other; in percentiles, a band of
0.05 escalates the prompts within 5 percentile points of the threshold, about 10% of traffic
like the router's training prompts, whatever the router.

An escalated prompt is embedded with MiniLM cut to ``ESCALATION_MAX_TOKENS`` (64 tokens, head
and tail), as in the gateway: it routes as well as the full 256 at a fraction of the CPU time.
The ``accurate`` tier alone keeps the encoder's full cut.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..base import RouterScores
from ..decision import Objective, choose

ESCALATION_MAX_TOKENS = 64  # MiniLM's cut (special tokens included) when a tiered policy escalates


def strong_win_cdf(meta: dict) -> np.ndarray | None:
    """The router's ``strong_win`` calibration quantiles (levels 0..100%), if it stores them."""
    q = ((meta or {}).get("calibration") or {}).get("strong_win")
    if not q or len(q) < 2:
        return None
    return np.maximum.accumulate(np.asarray(q, dtype=np.float64))


def _level(x: float, cdf: Sequence[float] | np.ndarray) -> float:
    """``F(x)`` interpolated from quantiles ``cdf`` at even levels 0..1 (``np.interp``'s rule), in pure
    Python: one call per request, where numpy's per-call overhead is most of the cost."""
    n = len(cdf) - 1
    if x <= cdf[0]:
        return 0.0
    if x >= cdf[n]:
        return 1.0
    i = bisect.bisect_right(cdf, x) - 1  # cdf[i] <= x < cdf[i + 1]
    lo, hi = cdf[i], cdf[i + 1]
    return (i + (x - lo) / (hi - lo if hi > lo else 1.0)) / n


def percentile_margin(strong_win: float, threshold: float, cdf: Sequence[float] | np.ndarray) -> float:
    """``|F(strong_win) - F(threshold)|`` with ``F`` interpolated from the quantiles ``cdf``."""
    return abs(_level(float(strong_win), cdf) - _level(float(threshold), cdf))


def margins(scores: RouterScores, threshold: float, cdf: np.ndarray | None = None) -> np.ndarray:
    """Per-prompt decision margin under a threshold objective (pair rule when there is a pair);
    in calibration percentiles when ``cdf`` (``strong_win_cdf``) is given and there is a pair."""
    if cdf is not None and scores.strong_win is not None:  # the pair rule: percentiles only
        return np.array([percentile_margin(sw, threshold, cdf) for sw in scores.strong_win.tolist()])
    obj = Objective("threshold", threshold)
    out = np.empty(len(scores.quality))
    for i, row in enumerate(scores.quality):
        q = dict(zip(scores.models, map(float, row)))
        sw = float(scores.strong_win[i]) if scores.strong_win is not None else None
        out[i] = choose(q, {}, obj, strong=scores.strong, weak=scores.weak, strong_win=sw).margin
        if cdf is not None and sw is not None:
            out[i] = percentile_margin(sw, threshold, cdf)
    return out


class TieredScorer:
    def __init__(self, tier: str, router: Any, fast_router: Any = None, threshold: float = 0.5, band: float = 0.05):
        if tier not in ("fast", "accurate", "tiered"):
            raise ValueError(f"unknown encoder tier {tier!r}")
        self.tier, self.router, self.fast_router = tier, router, fast_router or router
        self.threshold, self.band = threshold, band
        self.counts = {"fast": 0, "accurate": 0}
        self.cdf = strong_win_cdf(getattr(self.fast_router, "meta", {}))
        self._fast: Any = None
        self._accurate: Any = None

    @property
    def fast(self) -> Any:
        if self._fast is None:
            from .static import StaticEncoder

            self._fast = StaticEncoder.default()
        return self._fast

    @property
    def accurate(self) -> Any:
        if self._accurate is None:
            from ..encoder import Encoder

            self._accurate = Encoder.default()
        return self._accurate

    def score(self, texts: Sequence[str]) -> RouterScores:
        texts = list(texts)
        if self.tier == "accurate":
            self.counts["accurate"] += len(texts)
            return self.router.score(self.accurate.embed(texts))
        fast = self.fast_router.score(self.fast.embed(texts))
        if self.tier == "fast" or not texts:
            self.counts["fast"] += len(texts)
            return fast
        close = np.flatnonzero(margins(fast, self.threshold, self.cdf) < self.band)
        self.counts["accurate"] += len(close)
        self.counts["fast"] += len(texts) - len(close)
        if len(close) == 0:
            return fast
        acc = self.router.score(self.accurate.embed([texts[i] for i in close], max_tokens=ESCALATION_MAX_TOKENS))
        return _merge(fast, acc, close)

    def tiers(self, texts: Sequence[str]) -> list[str]:
        """Which tier decides each prompt (what the gateway's ``x-shunter-encoder-tier`` would say)."""
        if self.tier != "tiered":
            return [self.tier] * len(texts)
        fast = self.fast_router.score(self.fast.embed(list(texts)))
        return ["accurate" if m < self.band else "fast" for m in margins(fast, self.threshold, self.cdf)]


def _merge(fast: RouterScores, acc: RouterScores, rows: np.ndarray) -> RouterScores:
    """``fast`` with ``rows`` replaced by ``acc`` (models in the accurate router's order)."""
    cols = np.array([fast.models.index(m) for m in acc.models], dtype=np.intp)
    quality = np.array(fast.quality, dtype=np.float64, copy=True)
    quality[np.ix_(rows, cols)] = acc.quality
    sw = None
    if fast.strong_win is not None and acc.strong_win is not None:
        sw = np.array(fast.strong_win, dtype=np.float64, copy=True)
        sw[rows] = acc.strong_win
    return RouterScores(fast.models, quality, sw, fast.strong, fast.weak)
