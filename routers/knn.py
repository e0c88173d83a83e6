"""kNN baseline router (kind ``knn``), as in RouterBench.

``router.onnx`` holds the training embeddings (float32) and their per-model quality (NaN
filled with the model's mean): cosine similarity ``x @ X^T`` -> ``TopK(k)`` -> mean of the
neighbours' quality. At most ``max_rows`` training rows are kept (a seeded sample) so the
artifact stays small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import RouterScores, register
from .runtime import OnnxRouter, pair_strong_win


@register("knn")
class KNNRouter(OnnxRouter):
    def score(self, embeddings: np.ndarray) -> RouterScores:
        q = self.run(embeddings)["quality"]
        cols = self._pair_cols()
        sw = pair_strong_win(q, *cols) if cols else None
        return RouterScores(self.models, q, sw, self.strong, self.weak)


def train(
    table, emb: np.ndarray, out: str | Path, *, seed: int = 0, k: int = 40, max_rows: int = 5000
) -> tuple[dict[str, Any], Any]:
    from .export import base_meta
    from .onnx_graphs import GraphBuilder

    x = np.asarray(emb, np.float32)
    q = np.asarray(table.quality, np.float64)
    q = np.where(np.isfinite(q), q, np.nanmean(q, axis=0)[None, :]).astype(np.float32)
    if len(x) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_rows, replace=False))
        x, q = x[keep], q[keep]
    k = int(min(k, len(x)))
    g = GraphBuilder(x.shape[1])
    sims = g.op("MatMul", [g.input_name, g.const(np.ascontiguousarray(x.T))])
    g.nodes.append(
        g._h.make_node("TopK", [sims, g.const(np.array([k], np.int64))], ["topv", "topi"], axis=1, largest=1, sorted=1)
    )
    nb = g.op("Gather", [g.const(q), "topi"], axis=0)  # (N, k, M)
    g.op("ReduceMean", [nb], "quality", axes=[1], keepdims=0)
    g.save(Path(out) / "router.onnx", {"quality": ["N", q.shape[1]]}, doc="switchyard knn router")
    meta = base_meta("knn", table, k=k, rows=int(len(x)), onnx_outputs=["quality"])

    def reference(e: np.ndarray) -> RouterScores:
        s = np.asarray(e, np.float32) @ x.T
        idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return RouterScores(list(table.models), q[idx].mean(axis=1).astype(np.float32))

    return meta, reference
