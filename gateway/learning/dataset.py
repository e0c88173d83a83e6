"""Recorded outcomes + feedback -> a training table for the policy's router (training side).

One row per request with feedback: the prompt embedding the gateway recorded (float16), the
served model's score (mean of its feedback items, LLM-judge scores included) and cost. The
other models' cells are unobserved; :func:`fill_unobserved` gives them the current router's
predicted quality (distillation), so every family's trainer sees a full table and the new
router only moves where feedback disagrees with the old one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.outcomes.record import Feedback, Labelled


@dataclass
class FeedbackSet:
    """Labelled requests in time order, in the router's model names."""

    ids: list[str]
    ts: np.ndarray  # (n,)
    emb: np.ndarray  # (n, dim) float32
    models: list[str]  # router model names (columns)
    served: np.ndarray  # (n,) column index of the served model
    score: np.ndarray  # (n,) in [0, 1]
    cost: np.ndarray  # (n,) USD, NaN when unknown
    skipped: dict[str, int]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, idx: np.ndarray) -> FeedbackSet:
        return FeedbackSet(
            [self.ids[i] for i in idx],
            self.ts[idx],
            self.emb[idx],
            self.models,
            self.served[idx],
            self.score[idx],
            self.cost[idx],
            self.skipped,
        )

    def observed(self) -> np.ndarray:
        """(n, m) quality with only the served cells set (NaN elsewhere)."""
        q = np.full((len(self), len(self.models)), np.nan)
        q[np.arange(len(self)), self.served] = self.score
        return q

    def served_counts(self) -> dict[str, int]:
        return {m: int((self.served == j).sum()) for j, m in enumerate(self.models)}


def read_judge(path: str | Path) -> list[Feedback]:
    """JSONL ``{"request_id", "score" in [0, 1], "source"?: "judge", "label"?}`` -> feedback items."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(
                Feedback(
                    request_id=row["request_id"],
                    source=row.get("source", "judge"),
                    score=float(row["score"]),
                    label=row.get("label"),
                    comment=row.get("comment"),
                    ts=float(row.get("ts", 0.0)),
                )
            )
    return out


def build(rows: list[Labelled], models: list[str], model_map: dict[str, str]) -> FeedbackSet:
    """Keep rows with an embedding whose served model is one of the router's models."""
    col = {m: j for j, m in enumerate(models)}
    skipped = {"no_embedding": 0, "model_not_in_router": 0}
    ids, ts, emb, served, score, cost = [], [], [], [], [], []
    for r in rows:
        o = r.outcome
        inner = model_map.get(o.served or "", o.served)
        if not o.embedding:
            skipped["no_embedding"] += 1
            continue
        if inner not in col:
            skipped["model_not_in_router"] += 1
            continue
        ids.append(o.request_id)
        ts.append(o.ts)
        emb.append(np.frombuffer(o.embedding, np.float16).astype(np.float32))
        served.append(col[inner])
        score.append(r.score)
        cost.append(np.nan if o.cost_usd is None else o.cost_usd)
    dim = emb[0].shape[0] if emb else 384
    e = np.asarray(emb, np.float32).reshape(len(emb), dim)
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-9)
    return FeedbackSet(
        ids,
        np.asarray(ts, float),
        e,
        list(models),
        np.asarray(served, int),
        np.asarray(score, float),
        np.asarray(cost, float),
        skipped,
    )


def time_split(fs: FeedbackSet, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """Oldest (1 - holdout) for training, the newest ``holdout`` share held back."""
    order = np.argsort(fs.ts, kind="stable")
    n_test = max(1, int(round(holdout * len(fs))))
    return order[:-n_test], order[-n_test:]


def fill_unobserved(fs: FeedbackSet, predicted: np.ndarray) -> np.ndarray:
    """Observed served cells, the current router's prediction elsewhere."""
    q = np.asarray(predicted, float).copy()
    q[np.arange(len(fs)), fs.served] = fs.score
    return q


def to_table(fs: FeedbackSet, quality: np.ndarray, source: str) -> Any:
    """A ``routers.data.RoutingTable`` carrying the recorded embeddings (no re-embedding)."""
    import hashlib

    from routers.data import RoutingTable

    cost = np.full(quality.shape, np.nan)
    cost[np.arange(len(fs)), fs.served] = fs.cost
    h = hashlib.sha256(("\n".join(fs.ids)).encode()).hexdigest()
    return RoutingTable(
        prompts=[""] * len(fs),
        models=list(fs.models),
        quality=quality,
        cost=cost,
        ids=list(fs.ids),
        groups=list(fs.ids),
        fmt="outcomes",
        data_hash=h,
        embeddings=fs.emb,
        extra={"source": source},
    )
