"""CARROT-style cost-aware router (kind ``cost``).

One quality head per model (multi-output logistic regression, or a one-hidden-layer MLP with
``hidden>0``) on the prompt embedding, trained with soft-target BCE on the observed quality
(missing outcomes masked), weight decay and group-held-out early stopping. ``router.onnx``
outputs ``quality`` = sigmoid(heads(x)). router.json carries per-model
``typical_output_tokens``, ``typical_cost_usd`` and ``prices`` so the policy can take
``argmax quality - lambda * expected_cost`` via ``decision.choose(..., Objective("cost_weight",
lambda))``; the gateway prices each request from the policy file's upstream prices
(``gateway.runtime.Runtime.expected_cost``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import RouterScores, register
from .runtime import OnnxRouter, pair_strong_win


@register("cost")
class CostRouter(OnnxRouter):
    """Serve-time per-model quality predictor (onnxruntime only)."""

    def score(self, embeddings: np.ndarray) -> RouterScores:
        out = self.run(embeddings)
        q = out["quality"]
        cols = self._pair_cols()
        sw = out.get("strong_win")
        if sw is None and cols:
            sw = pair_strong_win(q, *cols)
        return RouterScores(self.models, q, sw, self.strong, self.weak)


def train(
    table,
    emb: np.ndarray,
    out: str | Path,
    *,
    seed: int = 0,
    hidden: int = 0,
    weight_decay: float = 1e-2,
    dropout: float = 0.1,
    **fit_kw: Any,
) -> tuple[dict[str, Any], Any]:
    """Fit the heads (``fit_kw`` go to ``heads.fit_heads``), export; returns (meta, reference)."""
    from .export import base_meta
    from .heads import fit_heads, predict_heads
    from .onnx_graphs import mlp_quality_graph

    layers, info = fit_heads(
        emb, table.quality, table.groups, hidden=hidden, weight_decay=weight_decay, dropout=dropout, seed=seed, **fit_kw
    )
    mlp_quality_graph(Path(out) / "router.onnx", layers, doc="shunter cost router")
    meta = base_meta("cost", table, fit=info, onnx_outputs=["quality"])

    def reference(e: np.ndarray) -> RouterScores:
        return RouterScores(list(table.models), predict_heads(layers, e))

    return meta, reference
