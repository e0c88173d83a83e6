"""Threshold cascades: Hybrid-LLM classifier (kind ``cascade``) and FrugalGPT answer checker.

(a) **Hybrid-LLM** (``CascadeRouter``): a classifier on the prompt embedding predicting
    ``P(cheap model is as good as strong)`` (label: ``(1 + q_weak - q_strong) / 2``, a tie
    counting half; ``label="hard"`` gives ``q_weak >= q_strong``). ``router.onnx``
    outputs ``cheap_ok`` and ``strong_win = 1 - cheap_ok``; the policy routes to the cheap
    model when ``strong_win < threshold``. Per-model ``quality`` is relative: strong = 1,
    weak = ``cheap_ok``.

(b) **FrugalGPT answer checker** (``AnswerChecker``, kind ``answer-check``): a learned scorer
    of an answer's correctness from ``[e_p, e_a, e_p * e_a]`` (prompt embedding, answer
    embedding, their product), trained on RouterBench's ``M|model_response`` with the
    correctness label ``M`` of all models. The gateway runs it on the cheap model's answer
    and escalates to the strong model when the score is below a threshold::

        checker = AnswerChecker.load("routers/artifacts/answer-check")
        p = checker.check_texts([prompt_text], [cheap_answer])[0]   # P(answer is correct)
        if p < checker.threshold:   # router.json "threshold"; or a policy value
            ...escalate...

    ``check(prompt_embs, answer_embs)`` takes precomputed embeddings (e.g. from the
    AsyncEmbedder). router.json also stores quantiles of the score on training answers
    (``calibration.p_correct``) so a policy can target an escalation rate
    (``checker.threshold_for_escalation(0.3)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import RouterScores, register
from .calibration import threshold_for_share
from .runtime import ONNX_FILE, OnnxRouter, as_batch, make_session, read_meta


@register("cascade")
class CascadeRouter(OnnxRouter):
    """Serve-time Hybrid-LLM classifier."""

    relative_quality = True  # strong = 1, weak = cheap_ok: not P(correct); see routers.adapt.prior_quality

    def score(self, embeddings: np.ndarray) -> RouterScores:
        out = self.run(embeddings)
        ok = out["cheap_ok"]
        q = np.ones((len(ok), len(self.models)), np.float32)
        if self.weak is None:
            raise ValueError("a cascade router's router.json names its weak model")
        q[:, self.models.index(self.weak)] = ok
        return RouterScores(self.models, q, out["strong_win"], self.strong, self.weak)


class AnswerChecker:
    """Serve-time FrugalGPT answer scorer: P(answer correct) from prompt and answer embeddings."""

    kind = "answer-check"

    def __init__(self, path: str | Path, meta: dict[str, Any], threads: int = 1) -> None:
        self.path = Path(path)
        self.meta = meta
        self.threshold: float = float(meta.get("threshold", 0.5))
        self.session = make_session(self.path / ONNX_FILE, threads)

    @classmethod
    def load(cls, path: str | Path, threads: int = 1) -> AnswerChecker:
        meta = read_meta(path)
        if meta.get("kind") != "answer-check":
            raise ValueError(f"{path} is not an answer-check artifact (kind={meta.get('kind')!r})")
        return cls(path, meta, threads)

    def check(self, prompt_embs: np.ndarray, answer_embs: np.ndarray) -> np.ndarray:
        """P(correct) for each (prompt, answer) pair; inputs (n, 384) unit vectors."""
        p, a = as_batch(prompt_embs), as_batch(answer_embs)
        feats = np.ascontiguousarray(np.concatenate([p, a, p * a], axis=1), np.float32)
        return self.session.run(None, {"features": feats})[0]

    def check_texts(self, prompts: Sequence[str], answers: Sequence[str], encoder=None) -> np.ndarray:
        """Embed prompt and answer texts with the (default) encoder, then :meth:`check`."""
        from .encoder import Encoder

        enc = encoder or Encoder.default()
        return self.check(enc.embed(list(prompts)), enc.embed(list(answers)))

    def should_escalate(self, p_correct: float | np.ndarray, threshold: float | None = None):
        """True where the answer's score is below ``threshold`` (default: router.json's)."""
        return np.asarray(p_correct) < (self.threshold if threshold is None else threshold)

    def threshold_for_escalation(self, rate: float) -> float:
        """Threshold escalating about ``rate`` of answers (training-answer quantiles)."""
        qs = self.meta["calibration"]["p_correct"]
        return threshold_for_share(qs, 1.0 - rate)


# ---------------------------------------------------------------------- training side


def _pair_names(table, strong: str | None, weak: str | None) -> tuple[str, str]:
    from .export import pair_of

    if strong and weak:
        return strong, weak
    pair = pair_of(table)
    if pair:
        return pair
    mean_q = np.nanmean(table.quality, axis=0)
    mean_c = np.nanmean(table.cost, axis=0)
    s = table.models[int(np.nanargmax(mean_q))]
    w = (
        table.models[int(np.nanargmin(mean_c))]
        if np.isfinite(mean_c).any()
        else table.models[int(np.nanargmin(mean_q))]
    )
    return strong or s, weak or w


def train(
    table,
    emb: np.ndarray,
    out: str | Path,
    *,
    seed: int = 0,
    strong: str | None = None,
    weak: str | None = None,
    hidden: int = 0,
    weight_decay: float = 1e-2,
    dropout: float = 0.1,
    label: str = "soft",
    **fit_kw: Any,
) -> tuple[dict[str, Any], Any]:
    """Hybrid-LLM classifier on a (strong, weak) pair of the table.

    ``label="hard"``: ``q_weak >= q_strong`` (a tie counts as the cheap model being good
    enough). ``label="soft"`` (default): ``(1 + q_weak - q_strong) / 2``, i.e. a tie is half
    good enough, so prompts both models get right (or wrong) rank between the ones the cheap
    model wins and the ones it loses; this is Hybrid-LLM's probabilistic label with the
    tie counted once, and it ranks held-out MMLU prompts better than the hard label.
    """
    if label not in ("soft", "hard"):
        raise ValueError(f"label must be 'soft' or 'hard', not {label!r}")
    from .export import base_meta
    from .heads import fit_heads, predict_logits
    from .onnx_graphs import GraphBuilder

    s_name, w_name = _pair_names(table, strong, weak)
    sub = table.select_models([s_name, w_name])
    qs, qw = sub.quality[:, 0], sub.quality[:, 1]
    ok = (qw >= qs).astype(np.float32) if label == "hard" else ((1.0 + qw - qs) / 2.0).astype(np.float32)
    y = np.where(np.isfinite(qs) & np.isfinite(qw), ok, np.nan)
    layers, info = fit_heads(
        emb, y[:, None], table.groups, hidden=hidden, weight_decay=weight_decay, dropout=dropout, seed=seed, **fit_kw
    )
    g = GraphBuilder(emb.shape[1])
    x = g.input_name
    for i, (w, b) in enumerate(layers):
        x = g.dense(x, w, b)
        if i < len(layers) - 1:
            x = g.op("Relu", [x])
    logit = g.op("Squeeze", [x, g.const(np.array([1], np.int64))])
    g.op("Sigmoid", [logit], "cheap_ok")
    g.op("Sigmoid", [g.op("Neg", [logit])], "strong_win")
    g.save(Path(out) / "router.onnx", {"cheap_ok": ["N"], "strong_win": ["N"]}, doc="shunter cascade (Hybrid-LLM)")
    meta = base_meta(
        "cascade",
        sub,
        fit=info,
        label="q_weak >= q_strong" if label == "hard" else "(1 + q_weak - q_strong) / 2",
        onnx_outputs=["cheap_ok", "strong_win"],
    )
    meta["strong"], meta["weak"] = s_name, w_name

    def reference(e: np.ndarray) -> RouterScores:
        lg = predict_logits(layers, e)[:, 0]
        ok = (1 / (1 + np.exp(-lg))).astype(np.float32)
        q = np.ones((len(ok), 2), np.float32)
        q[:, 1] = ok
        return RouterScores([s_name, w_name], q, (1 / (1 + np.exp(lg))).astype(np.float32), s_name, w_name)

    return meta, reference


def checker_features(prompt_emb: np.ndarray, answer_emb: np.ndarray) -> np.ndarray:
    return np.concatenate([prompt_emb, answer_emb, prompt_emb * answer_emb], axis=1).astype(np.float32)


def answer_dataset(table, emb: np.ndarray, encoder=None, progress: bool = False):
    """(features, labels, groups) over every (prompt, model) with a response and a label."""
    from .embed_cache import embed_texts

    if not table.responses:
        raise ValueError("the answer checker needs responses (RouterBench ``M|model_response`` columns)")
    feats: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    gs: list[str] = []
    for j, m in enumerate(table.models):
        resp = table.responses.get(m)
        if resp is None:
            continue
        ok = np.array([bool(r) for r in resp]) & np.isfinite(table.quality[:, j])
        idx = np.flatnonzero(ok)
        if not len(idx):
            continue
        a = embed_texts([resp[i] for i in idx], encoder, progress=progress)
        feats.append(checker_features(emb[idx], a))
        ys.append((table.quality[idx, j] >= 0.5).astype(np.float32))
        gs.extend(table.groups[i] for i in idx)
    return np.concatenate(feats), np.concatenate(ys), gs


def train_answer_checker(
    table,
    emb: np.ndarray,
    out: str | Path,
    *,
    seed: int = 0,
    hidden: int = 64,
    weight_decay: float = 1e-2,
    dropout: float = 0.2,
    encoder=None,
    progress: bool = False,
    **fit_kw: Any,
) -> tuple[dict[str, Any], Any]:
    """Train and export the FrugalGPT answer checker; writes router.json too."""
    from .calibration import quantiles
    from .export import base_meta
    from .heads import fit_heads, predict_heads, val_split
    from .onnx_graphs import GraphBuilder
    from .runtime import write_meta

    x, y, groups = answer_dataset(table, emb, encoder, progress)
    layers, info = fit_heads(
        x, y[:, None], groups, hidden=hidden, weight_decay=weight_decay, dropout=dropout, seed=seed, **fit_kw
    )
    g = GraphBuilder(x.shape[1], input_name="features")
    h = g.input_name
    for i, (w, b) in enumerate(layers):
        h = g.dense(h, w, b)
        if i < len(layers) - 1:
            h = g.op("Relu", [h])
    g.op("Sigmoid", [g.op("Squeeze", [h, g.const(np.array([1], np.int64))])], "p_correct")
    Path(out).mkdir(parents=True, exist_ok=True)
    g.save(Path(out) / "router.onnx", {"p_correct": ["N"]}, doc="shunter FrugalGPT answer checker")
    p = predict_heads(layers, x)[:, 0]
    _, va = val_split(groups, seed=seed)
    auc = _auc(p[va], y[va])
    acc = float(((p[va] >= 0.5) == (y[va] >= 0.5)).mean())
    meta = base_meta(
        "answer-check",
        table,
        features="concat(prompt_emb, answer_emb, prompt_emb*answer_emb)",
        onnx_input="features",
        onnx_outputs=["p_correct"],
        threshold=0.5,
        fit=info,
        answers=int(len(y)),
        positive_rate=float(y.mean()),
        metrics={"val_auc": auc, "val_accuracy@0.5": acc, "val_rows": int(len(va))},
        calibration={"levels": "0..100%", "p_correct": quantiles(p)},
    )
    write_meta(out, meta)

    def reference(pe: np.ndarray, ae: np.ndarray) -> np.ndarray:
        return predict_heads(layers, checker_features(pe, ae))[:, 0]

    return meta, reference


def checker_holdout_metrics(out: str | Path, table, emb: np.ndarray, encoder=None) -> dict[str, Any]:
    """AUC / accuracy of an exported checker on held-out (prompt, answer) pairs."""
    x, y, _ = answer_dataset(table, emb, encoder)
    chk = AnswerChecker.load(out)
    d = emb.shape[1]
    p = chk.check(x[:, :d], x[:, d : 2 * d])
    return {
        "auc": _auc(p, y),
        "accuracy@threshold": float(((p >= chk.threshold) == (y >= 0.5)).mean()),
        "answers": int(len(y)),
    }


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    pos, neg = score[y >= 0.5], score[y < 0.5]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
