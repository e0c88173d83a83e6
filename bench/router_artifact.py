"""The router artifact the benchmark routes with.

A shipped artifact under ``routers/artifacts`` (an ``mf`` one first) when there is one; else a
randomly initialised MF router of the same shape (384 -> 128 -> 2 models) written to a temp
folder. Random weights route at random, but the ONNX call costs the same as a trained router's,
which is all a latency benchmark needs. Building it needs ``onnx`` (the ``train`` extra).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ARTIFACTS = Path(__file__).resolve().parents[1] / "routers" / "artifacts"


def shipped() -> Path | None:
    found = sorted(p.parent for p in ARTIFACTS.glob("*/router.json") if (p.parent / "router.onnx").exists())
    mf = [p for p in found if p.name.startswith("mf")]
    return (mf or found or [None])[0]


def synthetic(out: Path, dim: int = 128, seed: int = 0) -> Path:
    from routers.encoder import DIM
    from routers.mf import export

    rng = np.random.default_rng(seed)
    params = {
        "proj_w": rng.normal(0, 0.05, (DIM, dim)).astype(np.float32),
        "proj_b": np.zeros(dim, np.float32),
        "vw": rng.normal(0, 0.1, (dim, 2)).astype(np.float32),
        "b": np.zeros(2, np.float32),
        "c": np.zeros(2, np.float32),
    }
    out.mkdir(parents=True, exist_ok=True)
    outputs = export(params, out, (0, 1))
    meta = {
        "kind": "mf",
        "version": 1,
        "models": ["strong-model", "weak-model"],
        "strong": "strong-model",
        "weak": "weak-model",
        "onnx_outputs": outputs,
        "note": "benchmark-only: random weights",
    }
    (out / "router.json").write_text(json.dumps(meta, indent=2))
    return out


def router_for_bench(workdir: Path, path: str | None = None) -> tuple[Path, str]:
    """(artifact folder, description)."""
    if path:
        return Path(path), f"given: {path}"
    found = shipped()
    if found is not None:
        return found, f"shipped: routers/artifacts/{found.name}"
    return synthetic(workdir / "router-synthetic"), "synthetic mf (random weights, same shape as a trained mf router)"
