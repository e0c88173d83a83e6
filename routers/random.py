"""Random router baseline (kind ``random``): seeded, uniform quality in [0, 1].

``quality = Phi(x @ R)`` with a seeded standard-Gaussian projection ``R`` and ``Phi`` the
normal CDF (``0.5 * (1 + erf(z / sqrt 2))``). For a unit-norm embedding ``x`` each ``x @ r``
is N(0, 1) over the seed, so every score is Uniform(0, 1) and the models' scores are
independent; the same prompt always gets the same scores (near-duplicate prompts get similar
ones). Computed in ``router.onnx``; smooth, so ONNX and numpy agree to float precision.
"""

from __future__ import annotations

from math import erf, sqrt
from pathlib import Path
from typing import Any

import numpy as np

from .base import RouterScores, register
from .runtime import OnnxRouter


@register("random")
class RandomRouter(OnnxRouter):
    def score(self, embeddings: np.ndarray) -> RouterScores:
        out = self.run(embeddings)
        sw = out["strong_win"] if self._pair_cols() else None
        return RouterScores(self.models, out["quality"], sw, self.strong, self.weak)


def _uniform(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    z = (np.asarray(x, np.float32) @ r).astype(np.float64) / sqrt(2.0)
    return (0.5 * (1.0 + np.vectorize(erf)(z))).astype(np.float32)


def train(table, emb: np.ndarray, out: str | Path, *, seed: int = 0, dim: int = 384) -> tuple[dict[str, Any], Any]:
    from .export import base_meta
    from .onnx_graphs import GraphBuilder

    m = len(table.models)
    d = emb.shape[1] if len(emb) else dim
    r = np.random.default_rng(seed).normal(0.0, 1.0, size=(d, m + 1)).astype(np.float32)
    g = GraphBuilder(d)
    z = g.op("Mul", [g.op("MatMul", [g.input_name, g.const(r)]), g.const(np.float32(1 / sqrt(2.0)))])
    u = g.op("Mul", [g.op("Add", [g.op("Erf", [z]), g.const(np.float32(1.0))]), g.const(np.float32(0.5))])
    # columns 0..m-1: quality; column m: strong_win (an independent draw)
    i64 = lambda v: g.const(np.array([v], np.int64))  # noqa: E731
    g.op("Slice", [u, i64(0), i64(m), i64(1)], "quality")
    sw = g.op("Slice", [u, i64(m), i64(m + 1), i64(1)])
    g.op("Squeeze", [sw, i64(1)], "strong_win")
    g.save(Path(out) / "router.onnx", {"quality": ["N", m], "strong_win": ["N"]}, doc="shunter random router")
    meta = base_meta("random", table, seed=seed, onnx_outputs=["quality", "strong_win"])

    def reference(e: np.ndarray) -> RouterScores:
        u_ = _uniform(e, r)
        return RouterScores(list(table.models), u_[:, :m], u_[:, m])

    return meta, reference
