"""Serve-time helpers shared by the router families: ONNX sessions and artifact metadata.

Imports only numpy and onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from . import providers

ONNX_FILE = "router.onnx"
META_FILE = "router.json"


def make_session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """A session with ``threads`` intra-op threads and one inter-op thread.

    Runs on ``SHUNTER_EXECUTION_PROVIDERS`` (default CPU; ``routers.providers``), falling back to
    the CPU with a logged warning.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see routers.encoder
    return providers.session(path, opts)


def read_meta(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / META_FILE).read_text())


def write_meta(path: str | Path, meta: dict[str, Any]) -> None:
    p = Path(path) / META_FILE
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=False, default=_jsonable) + "\n")
    tmp.replace(p)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def as_batch(embeddings: np.ndarray) -> np.ndarray:
    """(n, dim) float32, C-contiguous; a single (dim,) vector becomes (1, dim)."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    return np.ascontiguousarray(x)


def pair_strong_win(quality: np.ndarray, strong_col: int, weak_col: int) -> np.ndarray:
    """For quality-only routers on a pair: 0.5 + (q_strong - q_weak) / 2, in [0, 1].

    Monotone in the predicted quality gap, so thresholds on it rank prompts the same way.
    """
    sw = 0.5 + 0.5 * (quality[:, strong_col] - quality[:, weak_col])
    return np.minimum(np.maximum(sw, 0.0), 1.0)  # np.clip's dispatch costs more than both on one row


class OnnxRouter:
    """Base for ONNX-served routers: ``load(path)`` reads router.onnx + router.json."""

    kind: str = ""

    def __init__(self, path: str | Path, meta: dict[str, Any], threads: int = 1) -> None:
        self.path = Path(path)
        self.meta = meta
        self.models: list[str] = list(meta["models"])
        self.strong: str | None = meta.get("strong")
        self.weak: str | None = meta.get("weak")
        self.session = make_session(self.path / ONNX_FILE, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    @classmethod
    def load(cls, path: str | Path, threads: int = 1):
        return cls(path, read_meta(path), threads)

    def run(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {self.input_name: as_batch(embeddings)})
        return dict(zip(self.output_names, outs))

    def _pair_cols(self) -> tuple[int, int] | None:
        if self.strong in self.models and self.weak in self.models:
            return self.models.index(self.strong), self.models.index(self.weak)
        return None
