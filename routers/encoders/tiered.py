"""Offline tier cascade (``shunter score --encoder``, benchmarks): the gateway's rule, batched.

``TieredScorer(tier, router, fast_router, threshold, band).score(texts)`` returns the scores the
gateway's policy would decide on: the fast tier's for every prompt whose decision margin
(``routers.decision.choose(...).margin`` under a ``threshold`` objective) is at least ``band``,
MiniLM's for the rest. ``fast`` and ``accurate`` score every prompt with that tier alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..base import RouterScores
from ..decision import Objective, choose


def margins(scores: RouterScores, threshold: float) -> np.ndarray:
    """Per-prompt decision margin under a threshold objective (pair rule when there is a pair)."""
    obj = Objective("threshold", threshold)
    out = np.empty(len(scores.quality))
    for i, row in enumerate(scores.quality):
        q = dict(zip(scores.models, map(float, row)))
        sw = float(scores.strong_win[i]) if scores.strong_win is not None else None
        out[i] = choose(q, {}, obj, strong=scores.strong, weak=scores.weak, strong_win=sw).margin
    return out


class TieredScorer:
    def __init__(self, tier: str, router: Any, fast_router: Any = None, threshold: float = 0.5, band: float = 0.05):
        if tier not in ("fast", "accurate", "tiered"):
            raise ValueError(f"unknown encoder tier {tier!r}")
        self.tier, self.router, self.fast_router = tier, router, fast_router or router
        self.threshold, self.band = threshold, band
        self.counts = {"fast": 0, "accurate": 0}
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
        close = np.flatnonzero(margins(fast, self.threshold) < self.band)
        self.counts["accurate"] += len(close)
        self.counts["fast"] += len(texts) - len(close)
        if len(close) == 0:
            return fast
        acc = self.router.score(self.accurate.embed([texts[i] for i in close]))
        return _merge(fast, acc, close)

    def tiers(self, texts: Sequence[str]) -> list[str]:
        """Which tier decides each prompt (what the gateway's ``x-shunter-encoder-tier`` would say)."""
        if self.tier != "tiered":
            return [self.tier] * len(texts)
        fast = self.fast_router.score(self.fast.embed(list(texts)))
        return ["accurate" if m < self.band else "fast" for m in margins(fast, self.threshold)]


def _merge(fast: RouterScores, acc: RouterScores, rows: np.ndarray) -> RouterScores:
    """``fast`` with ``rows`` replaced by ``acc`` (models in the accurate router's order)."""
    cols = [fast.models.index(m) for m in acc.models]
    quality = np.array(fast.quality, dtype=np.float64, copy=True)
    quality[np.ix_(rows, cols)] = acc.quality
    sw = None
    if fast.strong_win is not None and acc.strong_win is not None:
        sw = np.array(fast.strong_win, dtype=np.float64, copy=True)
        sw[rows] = acc.strong_win
    return RouterScores(fast.models, quality, sw, fast.strong, fast.weak)
