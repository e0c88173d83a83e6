"""kNN router (kind ``knn``), RouterBench's baseline, smoothed towards a global prior.

Per-model quality of prompt x::

    quality_m(x) = (1 - w) * mean_{j in kNN(x)} q_m(j)  +  w * sigmoid(a_m . x + b_m)

- the neighbours are the ``k`` training prompts with the highest cosine similarity, measured
  in a ``dims``-dimensional PCA projection of the embedding (re-normalised): 128 of 384
  dimensions lose nothing measurable and let the training rows ship as float16 at
  ``rows x dims x 2`` bytes (13k MMLU rows: 3.3 MB);
- the prior (weight ``prior_weight``, 0.5) is a linear logistic head per model, so a prompt
  whose neighbourhood is thin or noisy is pulled towards a global estimate. ``prior="logistic"``
  (default) fits it with scikit-learn (L2, ``C=0.3``, soft targets, no early stopping);
  ``prior="heads"`` uses the early-stopped torch heads of ``routers.heads.fit_heads`` (the
  setting before: weight 0.3). On the MMLU pair, 5-fold APGR held-out rows / subjects:
  plain kNN 0.644 / 0.555, torch-head prior 0.653 / 0.569, logistic prior 0.657 / 0.573.

``router.onnx``: ``Sub/MatMul`` (PCA) -> ``ReduceL2/Div`` -> ``MatMul`` with the stored rows
-> ``TopK(k)`` -> ``Gather`` of their per-model quality (NaN filled with the model's mean) ->
``ReduceMean``, blended with ``Sigmoid(MatMul/Add)``. At most ``max_rows`` training rows are
kept (a seeded sample). ``prior_weight=0`` and ``dims=0`` give the plain RouterBench kNN.
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


def _pca(x: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components[dim, dims]) of ``x``, sign-fixed so the result is deterministic."""
    mu = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    comp = vt[:dims].T
    comp *= np.sign(comp[np.abs(comp).argmax(axis=0), np.arange(comp.shape[1])])
    return mu.astype(np.float32), comp.astype(np.float32)


def _normalise(z: np.ndarray) -> np.ndarray:
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def train(
    table,
    emb: np.ndarray,
    out: str | Path,
    *,
    seed: int = 0,
    k: int = 100,
    max_rows: int = 20000,
    dims: int = 128,
    prior_weight: float = 0.5,
    prior: str = "logistic",
    C: float = 0.3,
    **head_kw: Any,
) -> tuple[dict[str, Any], Any]:
    from .export import base_meta
    from .heads import fit_heads, fit_logistic, predict_heads
    from .onnx_graphs import GraphBuilder

    if not 0.0 <= prior_weight <= 1.0:
        raise ValueError("prior_weight must be in [0, 1]")
    if prior not in ("logistic", "heads"):
        raise ValueError("prior must be 'logistic' or 'heads'")
    if prior == "logistic" and head_kw:
        raise ValueError(f"options {sorted(head_kw)} apply to prior='heads' only")
    x = np.asarray(emb, np.float32)
    layers, head_info = None, None
    if prior_weight > 0:
        if prior == "logistic":
            layers, head_info = fit_logistic(x, table.quality, C=C)
        else:
            layers, head_info = fit_heads(x, table.quality, table.groups, hidden=0, seed=seed, **head_kw)
    q = np.asarray(table.quality, np.float64)
    q = np.where(np.isfinite(q), q, np.nanmean(q, axis=0)[None, :]).astype(np.float32)
    if len(x) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_rows, replace=False))
        x, q = x[keep], q[keep]
    k = int(min(k, len(x)))
    dims = int(min(dims, x.shape[1], len(x))) if dims else 0
    if dims:
        mu, comp = _pca(x, dims)
        stored = _normalise((x - mu) @ comp).astype(np.float16)
    else:
        stored = x.astype(np.float16)
    rows = stored.astype(np.float32)

    g = GraphBuilder(x.shape[1])
    z = g.input_name
    if dims:
        z = g.op("MatMul", [g.op("Sub", [z, g.const(mu)]), g.const(comp)])
        norm = g.op("Max", [g.op("ReduceL2", [z], axes=[1], keepdims=1), g.const(np.array(1e-12, np.float32))])
        z = g.op("Div", [z, norm])
    table_t = g.op("Cast", [g.const(np.ascontiguousarray(stored.T))], to=1)  # float16 -> float32
    sims = g.op("MatMul", [z, table_t])
    g.nodes.append(
        g._h.make_node("TopK", [sims, g.const(np.array([k], np.int64))], ["topv", "topi"], axis=1, largest=1, sorted=1)
    )
    nb = g.op("Gather", [g.const(q), "topi"], axis=0)  # (N, k, M)
    if layers is None:
        g.op("ReduceMean", [nb], "quality", axes=[1], keepdims=0)
    else:
        local = g.op("ReduceMean", [nb], axes=[1], keepdims=0)
        ((w, b),) = layers
        head = g.op("Sigmoid", [g.dense(g.input_name, w, b)])
        g.op(
            "Add",
            [
                g.op("Mul", [local, g.const(np.array(1 - prior_weight, np.float32))]),
                g.op("Mul", [head, g.const(np.array(prior_weight, np.float32))]),
            ],
            "quality",
        )
    g.save(Path(out) / "router.onnx", {"quality": ["N", q.shape[1]]}, doc="shunter knn router")
    meta = base_meta(
        "knn",
        table,
        k=k,
        rows=int(len(x)),
        dims=dims,
        prior_weight=prior_weight,
        prior=prior,
        fit=head_info,
        onnx_outputs=["quality"],
    )

    def reference(e: np.ndarray) -> RouterScores:
        e = np.asarray(e, np.float32)
        ze = _normalise((e - mu) @ comp) if dims else e
        idx = np.argsort(-(ze @ rows.T), axis=1, kind="stable")[:, :k]
        qual = q[idx].mean(axis=1)
        if layers is not None:
            qual = (1 - prior_weight) * qual + prior_weight * predict_heads(layers, e)
        return RouterScores(list(table.models), qual.astype(np.float32))

    return meta, reference
