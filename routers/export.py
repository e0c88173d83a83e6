"""Training-side: assemble ``router.json`` for an artifact folder.

router.json fields (all families):

- ``kind``, ``version``, ``models`` (column order of every output), ``strong``/``weak``
  (pair routers; strong = the model with the higher mean training quality);
- ``encoder``: ``{id, hash, dim, max_tokens, select}`` the embeddings must come from;
- ``training_data``: ``[{format, hash, rows, models}]``;
- ``calibration``: quantiles at 0..100% of ``strong_win`` (pair routers) and of each model's
  predicted quality on the training prompts, plus ``quality_sample`` (predicted quality on up
  to 512 training prompts) so ``target_strong_share`` works for any strong/weak pair;
- ``metrics``: training-time metrics (train rows and, with ``--holdout``, held-out rows);
- ``typical_output_tokens``, ``typical_cost_usd``, ``prices`` (USD per million tokens, where
  known) per model, for the evaluation's expected costs (``routers.evaluate.expected_costs``);
- ``training_sketch``: a 1-in-16 sample of the training prompts' hashes
  (:func:`prompt_sketch`), so ``shunter eval`` can tell when it is asked to score rows the
  router was trained on (:func:`training_overlap`);
- ``created``, ``onnx_outputs``, plus family-specific fields.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import RouterScores
from .calibration import quantiles
from .data import RoutingTable
from .encoder import DIM, MAX_TOKENS, Encoder
from .runtime import write_meta


def pair_of(table: RoutingTable) -> tuple[str, str] | None:
    """(strong, weak) for two-model tables, by mean quality."""
    if len(table.models) != 2:
        return None
    mean = np.nanmean(table.quality, axis=0)
    s = int(np.argmax(mean))
    return table.models[s], table.models[1 - s]


def typical_output_tokens(table: RoutingTable, encoder: Encoder | None = None) -> dict[str, float]:
    """Median word-piece token count of each model's responses (RouterBench), when present."""
    if not table.responses:
        return {}
    enc = encoder or Encoder.default()
    out = {}
    for m, resp in table.responses.items():
        sample = [r for r in resp[:400] if r]
        if sample:
            out[m] = float(np.median([enc.count_tokens(r) for r in sample]))
    return out


def typical_cost(table: RoutingTable) -> dict[str, float]:
    finite = np.isfinite(table.cost)
    total = np.where(finite, table.cost, 0.0).sum(axis=0)
    mean = np.where(finite.any(axis=0), total / np.maximum(finite.sum(axis=0), 1), np.nan)
    return {m: float(c) for m, c in zip(table.models, mean) if np.isfinite(c)}


def prices_of(table: RoutingTable) -> dict[str, dict[str, float]]:
    out = {}
    for m, p in (table.extra.get("prices") or {}).items():
        out[m] = {"input_per_m": float(p["input_price"]), "output_per_m": float(p["output_price"])}
    return out


def base_meta(kind: str, table: RoutingTable, encoder: Encoder | None = None, **extra: Any) -> dict[str, Any]:
    enc = encoder or Encoder.default()
    pair = pair_of(table)
    meta: dict[str, Any] = {
        "kind": kind,
        "version": 1,
        "models": list(table.models),
        "strong": pair[0] if pair else None,
        "weak": pair[1] if pair else None,
        "encoder": {
            "id": enc.encoder_id,
            "hash": enc.encoder_hash,
            "dim": DIM,
            "max_tokens": MAX_TOKENS,
            "select": "last_user",
        },
        "training_data": [
            {"format": table.fmt, "hash": table.data_hash, "rows": len(table), "models": list(table.models)}
        ],
        "typical_output_tokens": typical_output_tokens(table, enc),
        "typical_cost_usd": typical_cost(table),
        "prices": prices_of(table),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    meta.update(extra)
    return meta


def calibration_of(scores: RouterScores) -> dict[str, Any]:
    cal: dict[str, Any] = {"levels": "0..100%"}
    if scores.strong_win is not None:
        cal["strong_win"] = quantiles(scores.strong_win)
    cal["quality"] = {m: quantiles(scores.quality[:, j]) for j, m in enumerate(scores.models)}
    n = len(scores.quality)
    idx = np.random.default_rng(0).choice(n, min(n, 512), replace=False) if n else np.zeros(0, np.int64)
    cal["quality_sample"] = np.round(scores.quality[np.sort(idx)], 4).tolist()  # any-pair calibration
    return cal


def finish(out: str | Path, meta: dict[str, Any], train_scores: RouterScores) -> dict[str, Any]:
    """Add calibration quantiles from training-prompt scores and write router.json."""
    meta["calibration"] = calibration_of(train_scores)
    write_meta(out, meta)
    return meta


SKETCH_PREFIX = "0"  # keep prompts whose sha256 starts with this: a 1-in-16 sample
SKETCH_CHARS = 12


def _prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def prompt_sketch(prompts: Sequence[str]) -> dict[str, Any]:
    """router.json ``training_sketch``: the first 12 hex digits of sha256(prompt) for the
    training prompts whose hash starts with ``0`` (about 1 in 16; ~16 KB for 20k prompts)."""
    hashes = sorted({h[:SKETCH_CHARS] for h in map(_prompt_hash, prompts) if h.startswith(SKETCH_PREFIX)})
    return {"rule": "sha256(prompt)[:12] of the training prompts whose sha256 starts with '0'", "hashes": hashes}


def training_overlap(meta: dict[str, Any], table: RoutingTable) -> dict[str, Any]:
    """How much of ``table`` the router was trained on: ``{"share", "by", ...}``.

    With a ``training_sketch`` the share is measured on the evaluated prompts that fall in the
    sketch's 1-in-16 sample. Artifacts without one (built before it existed) count as trained
    on every row of a data file whose hash their ``training_data`` records."""
    sketch = meta.get("training_sketch")
    if sketch and sketch.get("hashes"):
        known = set(sketch["hashes"])
        keys = [h[:SKETCH_CHARS] for h in map(_prompt_hash, table.prompts) if h.startswith(SKETCH_PREFIX)]
        if keys:
            hit = sum(k in known for k in keys)
            return {"share": hit / len(keys), "by": "prompt sketch", "checked": len(keys), "seen": hit}
        return {"share": 0.0, "by": "prompt sketch", "checked": 0, "seen": 0}
    trained = {d.get("hash") for d in meta.get("training_data") or [] if d.get("hash")}
    ours = {table.data_hash} | {s.get("hash") for s in table.extra.get("sources", [])}
    if trained & ours:
        return {"share": 1.0, "by": "data file hash (router.json training_data)"}
    return {"share": 0.0, "by": "data file hash (router.json training_data)"}
