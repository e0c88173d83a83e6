"""Recorded outcomes + feedback -> a training table for the policy's router (training side).

One row per request with feedback: the prompt embedding the gateway recorded (float16), the
served model's score (mean of its feedback items, LLM-judge scores included) and cost. The
other models' cells are unobserved; :func:`fill_unobserved` gives them the current router's
predicted quality (distillation), so every family's trainer sees a full table and the new
router only moves where feedback disagrees with the old one.

LLM-judge items (source ``judge`` for the served model, ``judge@<model>`` for a model that did
not serve, e.g. from shadow sampling) become Bradley-Terry pairs (served vs that model, target
``0.5 + (s_served - s_other) / 2``) for :func:`to_judged`, the adaptation's input.
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
    pointwise: np.ndarray | None = None  # (n,) served model's score without pairwise judge items (NaN: none)
    pairs: list[list[tuple[int, float]]] | None = None  # per row: (other column, P(served beats it))

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
            None if self.pointwise is None else self.pointwise[idx],
            None if self.pairs is None else [self.pairs[i] for i in idx],
        )

    def observed(self) -> np.ndarray:
        """(n, m) quality with only the served cells set (NaN elsewhere)."""
        q = np.full((len(self), len(self.models)), np.nan)
        q[np.arange(len(self)), self.served] = self.score
        return q

    def served_counts(self) -> dict[str, int]:
        return {m: int((self.served == j).sum()) for j, m in enumerate(self.models)}


JUDGE = "judge"


def is_judge(fb: Feedback) -> bool:
    return fb.source == JUDGE or fb.source.startswith(JUDGE + "@")


def read_judge(path: str | Path) -> list[Feedback]:
    """JSONL ``{"request_id", "score" in [0, 1], "model"?, "source"?: "judge", "label"?}`` -> feedback
    items; ``model`` names the model the score is for (source ``judge@<model>``; default: the served one).
    A missing file or a malformed line is a ``ValueError`` naming the file and line."""
    from pydantic import ValidationError

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"judge file {path}: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(_judge_item(json.loads(line)))
        except (ValueError, TypeError, KeyError, ValidationError) as exc:
            why = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
            if isinstance(exc, ValidationError):
                err = exc.errors()[0]
                why = f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
            raise ValueError(
                f'{path}:{n}: not a judge item ({why}); expected {{"request_id": ..., "score": 0..1, "model"?: ...}}'
            ) from None
    return out


def _judge_item(row: Any) -> Feedback:
    if not isinstance(row, dict):
        raise TypeError("a JSON object per line")
    src = row.get("source", JUDGE)
    if row.get("model"):
        src = f"{JUDGE}@{row['model']}"
    return Feedback(
        request_id=row["request_id"],
        source=src,
        score=float(row["score"]),
        label=row.get("label"),
        comment=row.get("comment"),
        ts=float(row.get("ts", 0.0)),
    )


def _judge_view(
    items: list[Feedback], served: str, col: dict[str, int], model_map: dict[str, str]
) -> tuple[float, list[tuple[int, float]]]:
    """(served model's pointwise score or NaN, [(other column, P(served beats it))]) of one request."""
    own = [f.score for f in items if f.source == JUDGE or f.source == f"{JUDGE}@{served}"]
    others = {}
    for f in items:
        if f.source.startswith(JUDGE + "@"):
            name = f.source.split("@", 1)[1]
            inner = model_map.get(name, name)
            if inner in col and col[inner] != col.get(model_map.get(served, served), -1) and name != served:
                others[col[inner]] = f.score
    user = [f.score for f in items if not is_judge(f)]
    if not others:  # judge scores of the served model only: absolute labels, like user feedback
        vals = user + own
        return (float(np.mean(vals)) if vals else float("nan")), []
    s_own = float(np.mean(own)) if own else None
    pairs = [(j, 0.5 + ((s_own if s_own is not None else 1.0 - s) - s) / 2.0) for j, s in others.items()]
    return (float(np.mean(user)) if user else float("nan")), pairs


def tier_of(outcome: Any) -> str:
    """The encoder tier that made a record's embedding (records from before tiers: MiniLM)."""
    return str(getattr(outcome, "encoder_tier", None) or "accurate")


def embeddings(outcomes: list[Any], tiers: set[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((n, dim) float32, (n,) arrival times) of the outcomes that recorded a prompt embedding
    (the unlabelled traffic); ``tiers``: only embeddings from these encoder tiers."""
    kept = [o for o in outcomes if o.embedding and (tiers is None or tier_of(o) in tiers)]
    if not kept:
        return np.zeros((0, 384), np.float32), np.zeros(0)
    vecs = np.asarray([np.frombuffer(o.embedding, np.float16).astype(np.float32) for o in kept], np.float32)
    return vecs, np.asarray([o.ts for o in kept], float)


def build(
    rows: list[Labelled],
    models: list[str],
    model_map: dict[str, str],
    items: dict[str, list[Feedback]] | None = None,
    tiers: set[str] | None = None,
) -> FeedbackSet:
    """Keep rows with an embedding whose served model is one of the router's models.

    ``items``: each request's feedback items (judge items become pairs, see :func:`to_judged`).
    ``tiers``: only embeddings from these encoder tiers (the ones the router was trained on)."""
    col = {m: j for j, m in enumerate(models)}
    skipped = {"no_embedding": 0, "other_encoder_tier": 0, "model_not_in_router": 0}
    ids, ts, emb, served, score, cost = [], [], [], [], [], []
    pointwise: list[float] = []
    pairs: list[list[tuple[int, float]]] = []
    for r in rows:
        o = r.outcome
        inner = model_map.get(o.served or "", o.served)
        if not o.embedding:
            skipped["no_embedding"] += 1
            continue
        if tiers is not None and tier_of(o) not in tiers:
            skipped["other_encoder_tier"] += 1
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
        if items is not None and items.get(o.request_id):
            pw, pr = _judge_view(items[o.request_id], o.served or "", col, model_map)
        else:
            pw, pr = r.score, []
        pointwise.append(pw)
        pairs.append([(j, float(np.clip(t, 0.0, 1.0))) for j, t in pr])
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
        np.asarray(pointwise, float),
        pairs,
    )


def to_judged(fs: FeedbackSet) -> Any:
    """``routers.adapt.Judged``: the served model's score (user feedback and absolute judge
    scores) as a per-model label, judge preferences as Bradley-Terry pairs, the request ids as
    row ids (so a later retrain knows which rows the adapted router has learnt from)."""
    from routers.adapt import Judged

    y = np.full((len(fs), len(fs.models)), np.nan)
    pw = fs.pointwise if fs.pointwise is not None else fs.score
    y[np.arange(len(fs)), fs.served] = pw
    rows = [(i, int(fs.served[i]), j, t) for i, pr in enumerate(fs.pairs or []) for j, t in pr]
    pairs = np.asarray(rows, float).reshape(len(rows), 4)
    return Judged(fs.emb, list(fs.models), y, pairs, list(fs.ids))


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
