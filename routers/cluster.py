"""UniRoute-style cluster router (kind ``cluster``).

k-means over training prompt embeddings; ``router.onnx`` outputs the soft assignment
``assign = softmax(-||x - c_k||^2 / temperature)`` (shape [N, K]). The per-cluster, per-model
mean quality table ``q[k][m]`` lives in ``router.json`` (``cluster_quality``), and
``quality_m(x) = sum_k P(k|x) q_m[k]``.

Cluster means are shrunk towards the model's overall mean (``prior_strength`` pseudo-rows),
so small clusters do not swing to 0 or 1.

**Adding a model is profiling, not retraining**: :func:`profile` embeds a small labelled set
for the new model, soft-assigns it with the *unchanged* ONNX graph, and writes the new
model's column (and its typical cost, when given) into router.json. ``shunter profile``
calls it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import RouterScores, register
from .runtime import OnnxRouter, pair_strong_win, read_meta, write_meta


@register("cluster")
class ClusterRouter(OnnxRouter):
    """Serve-time cluster router: ONNX soft assignment x router.json quality table."""

    def __init__(self, path: str | Path, meta: dict[str, Any], threads: int = 1) -> None:
        super().__init__(path, meta, threads)
        self.table = np.asarray([meta["cluster_quality"][m] for m in self.models], np.float32).T  # (K, M)

    def assign(self, embeddings: np.ndarray) -> np.ndarray:
        """P(k|x), shape (n, K)."""
        return self.run(embeddings)["assign"]

    def score(self, embeddings: np.ndarray) -> RouterScores:
        q = np.clip(self.assign(embeddings) @ self.table, 0.0, 1.0).astype(np.float32)
        cols = self._pair_cols()
        sw = pair_strong_win(q, *cols) if cols else None
        return RouterScores(self.models, q, sw, self.strong, self.weak)


def soft_assign(x: np.ndarray, centers: np.ndarray, temperature: float) -> np.ndarray:
    """Training-time reference of the graph: softmax(-dist^2 / T)."""
    x = np.asarray(x, np.float32)
    d2 = (x * x).sum(1, keepdims=True) - 2 * x @ centers.T + (centers * centers).sum(1)[None, :]
    z = -d2 / temperature
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def shrunk_table(assign: np.ndarray, quality: np.ndarray, prior_strength: float) -> np.ndarray:
    """(K, M) cluster means of ``quality`` under soft ``assign``, shrunk to the column mean."""
    q = np.asarray(quality, np.float64)
    mask = np.isfinite(q)
    qz = np.where(mask, q, 0.0)
    prior = qz.sum(0) / np.maximum(mask.sum(0), 1)
    num = assign.T @ qz + prior_strength * prior[None, :]
    den = assign.T @ mask.astype(np.float64) + prior_strength
    return num / den


def export(centers: np.ndarray, temperature: float, out: str | Path) -> None:
    from .onnx_graphs import GraphBuilder

    g = GraphBuilder(centers.shape[1])
    x = g.input_name
    xx = g.op("ReduceSumSquare", [x], axes=[1], keepdims=1)  # opset 17: axes as attribute
    cross = g.op("MatMul", [x, g.const(centers.T.astype(np.float32))])
    cc = g.const((centers * centers).sum(1).astype(np.float32))
    d2 = g.op("Add", [g.op("Sub", [xx, g.op("Mul", [cross, g.const(np.float32(2.0))])]), cc])
    z = g.op("Mul", [d2, g.const(np.float32(-1.0 / temperature))])
    g.op("Softmax", [z], "assign", axis=1)
    g.save(Path(out) / "router.onnx", {"assign": ["N", centers.shape[0]]}, doc="shunter cluster router")


def _pick_temperature(x: np.ndarray, centers: np.ndarray, q: np.ndarray, groups: Sequence[str], prior: float) -> float:
    """Temperature with the lowest held-out-group squared error of predicted quality."""
    from .heads import val_split

    tr, va = val_split(groups)
    best_t, best_err = 0.05, np.inf
    for t in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5):
        table = shrunk_table(soft_assign(x[tr], centers, t), q[tr], prior)
        pred = soft_assign(x[va], centers, t) @ table
        m = np.isfinite(q[va])
        err = float(((pred - np.nan_to_num(q[va])) ** 2)[m].mean())
        if err < best_err:
            best_t, best_err = t, err
    return best_t


def train(
    table,
    emb: np.ndarray,
    out: str | Path,
    *,
    seed: int = 0,
    k: int = 24,
    prior_strength: float = 10.0,
    temperature: float | None = None,
) -> tuple[dict[str, Any], Any]:
    """k-means + temperature + shrunk cluster table; returns (meta, reference)."""
    from sklearn.cluster import KMeans

    from .export import base_meta

    x = np.asarray(emb, np.float32)
    k = int(min(k, max(2, len(x) // 20)))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    centers = km.cluster_centers_.astype(np.float32)
    t = temperature or _pick_temperature(x, centers, table.quality, table.groups, prior_strength)
    qtab = shrunk_table(soft_assign(x, centers, t), table.quality, prior_strength)
    export(centers, t, out)
    meta = base_meta(
        "cluster",
        table,
        k=k,
        temperature=t,
        prior_strength=prior_strength,
        cluster_quality={m: qtab[:, j].tolist() for j, m in enumerate(table.models)},
        cluster_sizes=np.bincount(km.labels_, minlength=k).tolist(),
        profiled={},
        onnx_outputs=["assign"],
    )

    def reference(e: np.ndarray) -> RouterScores:
        return RouterScores(list(table.models), np.clip(soft_assign(e, centers, t) @ qtab, 0, 1).astype(np.float32))

    return meta, reference


def profile(
    artifact_dir: str | Path,
    model_name: str,
    prompts: Sequence[str] | None,
    scores: Sequence[float],
    *,
    embeddings: np.ndarray | None = None,
    cost_usd: float | None = None,
    output_tokens: float | None = None,
    encoder=None,
) -> dict[str, Any]:
    """Add (or re-profile) ``model_name`` in a cluster router from a small labelled set.

    ``scores`` are the model's qualities in [0, 1] on ``prompts`` (or on precomputed
    ``embeddings``). The k-means centres and router.onnx are not touched; only router.json
    gains the model's per-cluster quality column. Returns the updated router.json dict.
    """
    from .encoder import Encoder

    path = Path(artifact_dir)
    meta = read_meta(path)
    if meta.get("kind") != "cluster":
        raise ValueError(f"{path} is a {meta.get('kind')!r} router; profiling needs a cluster router")
    if embeddings is None:
        embeddings = (encoder or Encoder.default()).embed(list(prompts or []))
    router = ClusterRouter.load(path)
    a = router.assign(embeddings).astype(np.float64)
    col = shrunk_table(a, np.asarray(scores, np.float64)[:, None], float(meta.get("prior_strength", 10.0)))[:, 0]
    meta["cluster_quality"][model_name] = col.tolist()
    if model_name not in meta["models"]:
        meta["models"].append(model_name)
    if cost_usd is not None:
        meta.setdefault("typical_cost_usd", {})[model_name] = float(cost_usd)
    if output_tokens is not None:
        meta.setdefault("typical_output_tokens", {})[model_name] = float(output_tokens)
    meta.setdefault("profiled", {})[model_name] = {"rows": int(len(a)), "mean_quality": float(np.mean(scores))}
    # calibration of the new column on its profiling prompts
    meta.setdefault("calibration", {}).setdefault("quality", {})
    from .calibration import quantiles

    meta["calibration"]["quality"][model_name] = quantiles(a @ col)
    write_meta(path, meta)
    return meta
