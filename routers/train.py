"""Training-side entry point: ``train_router(kind, table, out)`` for every family.

Embeds the table's prompts (cached on disk), fits the family, exports ``router.onnx``, loads
it back through the serving path (``load_router``), and writes ``router.json`` with
calibration quantiles from the exported graph's scores on the training prompts and
training-time metrics (train rows; held-out rows when ``holdout`` is given).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .base import RouterScores, load_router
from .data import RoutingTable, holdout_split
from .embed_cache import embed_texts
from .encoder import Encoder
from .progress import bar

# CLI name -> family module (the module's ``train`` does the fitting and export).
FAMILIES = {
    "mf": "mf",
    "cluster": "cluster",
    "cascade": "cascade",
    "answer-check": "cascade",
    "cost": "cost",
    "knn": "knn",
    "random": "random",
    "prior": "prior",
}


def table_embeddings(table: RoutingTable, encoder: Any = None, progress: bool = False) -> np.ndarray:
    """The table's prompt embeddings: carried ones (outcomes) or cached encoder output."""
    if table.embeddings is not None:
        return np.asarray(table.embeddings, np.float32)
    return embed_texts(table.prompts, encoder, progress=progress)


@contextmanager
def _fit_progress(kind: str, opts: dict[str, Any], enabled: bool) -> Iterator[dict[str, Any]]:
    """A bar while a family fits; early-stopped epoch loops (mf, torch heads) get an ``on_epoch`` for it.

    The bar counts epochs against the family's maximum; early stopping usually ends it sooner,
    so the ETA is an upper bound and the bar closes at the epoch it stopped on.
    """
    epochs = kind in ("mf", "cost", "cascade") or (kind == "knn" and opts.get("prior") == "heads")
    with bar(f"fitting {kind}", None, "epochs" if epochs else "", enabled=enabled) as b:
        if not epochs:  # k-means, logistic regression, random: no epochs to count
            yield {}
            b.update(completed=1, total=1, description=f"fitted {kind}")
            return
        done, most = [0], [0]

        def on_epoch(epoch: int, max_epochs: int, val_loss: float) -> None:
            done[0], most[0] = epoch, max_epochs
            b.update(completed=epoch, total=max_epochs, description=f"fitting {kind} (val loss {val_loss:.4f})")

        yield {"on_epoch": on_epoch}
        early = f", early stop at epoch {done[0]} of {most[0]}" if done[0] < most[0] else ""
        b.update(completed=done[0], total=done[0], description=f"fitted {kind}{early}")


def _pooled(parts: list[RouterScores]) -> RouterScores:
    """One ``RouterScores`` of the rows of several (same models)."""
    sw = None if parts[0].strong_win is None else np.concatenate([p.strong_win for p in parts])
    q = np.concatenate([p.quality for p in parts])
    return RouterScores(parts[0].models, q, sw, parts[0].strong, parts[0].weak)


def _sources(table: RoutingTable) -> np.ndarray:
    from .data import source_of

    return np.array([source_of(g) for g in table.groups])


def evaluate_table(table: RoutingTable, scores: RouterScores, meta: dict[str, Any]) -> dict[str, Any]:
    """``evaluate_scores``, or for a ``mixed`` table one evaluation per source data set (on the
    models that data set records): ``{"rows", "by_source": {format: metrics}}``."""
    from .data import source_of
    from .evaluate import evaluate_scores

    if table.fmt != "mixed":
        return evaluate_scores(table, scores, meta)
    src = np.array([source_of(g) for g in table.groups])
    out: dict[str, Any] = {"rows": len(table), "by_source": {}}
    for s in sorted(set(src.tolist())):
        idx = np.flatnonzero(src == s)
        sub = table.subset(idx)
        sub = sub.select_models([m for j, m in enumerate(sub.models) if np.isfinite(sub.quality[:, j]).any()])
        sw = None if scores.strong_win is None else scores.strong_win[idx]
        part = RouterScores(scores.models, scores.quality[idx], sw, scores.strong, scores.weak)
        out["by_source"][s] = evaluate_scores(sub, part, meta)
    return out


ENCODER_CHOICES = ("accurate", "fast", "both")


def encoders_for(choice: str | Any | None) -> list[Any]:
    """The encoders a router is trained on: ``accurate`` (MiniLM), ``fast`` (static table), ``both``.

    ``both`` stacks each training prompt's two embeddings (same 384-d space), so one router
    serves a tiered policy. An encoder object is used as it is.
    """
    if choice is None or choice == "accurate":
        return [Encoder.default()]
    if not isinstance(choice, str):
        return [choice]
    from .encoders.static import StaticEncoder

    if choice == "fast":
        return [StaticEncoder.default()]
    if choice == "both":
        return [Encoder.default(), StaticEncoder.default()]
    raise ValueError(f"unknown encoder {choice!r}; choose from {', '.join(ENCODER_CHOICES)}")


def encoder_pin(enc: Any) -> dict[str, Any]:
    """What router.json records about an encoder (``routers.base.encoder_hashes`` reads it)."""
    from .encoder import DIM, MAX_TOKENS

    return {
        "id": enc.encoder_id,
        "hash": enc.encoder_hash,
        "dim": int(getattr(enc, "dim", DIM)),
        "max_tokens": int(getattr(enc, "max_tokens", MAX_TOKENS)),
        "select": "last_user",
    }


def train_router(
    kind: str,
    table: RoutingTable,
    out: str | Path,
    *,
    holdout: float = 0.0,
    seed: int = 0,
    split: str = "group",
    fold: tuple[int, int] | None = None,
    progress: bool = False,
    encoder: Any = None,
    log: Callable[[str], None] = lambda s: None,
    **opts: Any,
) -> tuple[dict[str, Any], Any]:
    """Train a router of ``kind`` on ``table`` into folder ``out``.

    ``encoder``: ``accurate`` (default), ``fast``, ``both`` or an encoder object
    (``encoders_for``); with ``both`` every training prompt contributes one row per encoder and
    held-out metrics are on the first (MiniLM).

    Returns ``(router.json dict, reference)`` where ``reference`` is the training-time
    implementation (callable on embeddings) used by the parity tests.
    """
    from .evaluate import evaluate_scores
    from .export import finish, prompt_sketch

    if kind not in FAMILIES:
        raise ValueError(f"unknown router {kind!r}; choose from {sorted(FAMILIES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    encs = encoders_for(encoder)
    embs = [table_embeddings(table, e, progress) for e in encs]
    emb_all = embs[0]
    tr, te = holdout_split(table, holdout, seed, split, fold)
    if fold is not None:  # (i, k): fold i of a k-way partition is held out
        holdout = 1.0 / fold[1]
    train_t = table.subset(np.concatenate([tr] * len(encs)))
    emb_tr = np.concatenate([e[tr] for e in embs])
    encoder = encs[0]
    module = importlib.import_module(f"routers.{FAMILIES[kind]}")
    log(f"fitting {kind} on {len(tr)} prompts x {len(table.models)} models")
    if kind == "answer-check":
        if len(encs) > 1:
            raise ValueError("an answer checker embeds prompt and answer with one encoder; use accurate or fast")
        meta, ref = module.train_answer_checker(train_t, emb_all[tr], out, seed=seed, encoder=encoder, **opts)
        if len(te):
            meta["metrics"]["holdout"] = module.checker_holdout_metrics(out, table.subset(te), emb_all[te], encoder)
            meta["metrics"]["holdout"]["split"] = {
                "by": split,
                "frac": holdout,
                "seed": seed,
                "fold": fold,
                "rows": int(len(te)),
            }
            from .runtime import write_meta

            write_meta(out, meta)
        return meta, ref
    with _fit_progress(kind, opts, progress) as extra:
        meta, ref = module.train(train_t, emb_tr, out, seed=seed, **opts, **extra)
    meta["training_sketch"] = prompt_sketch(table.subset(tr).prompts)
    meta["encoder"] = encoder_pin(encs[0])
    if len(encs) > 1:
        meta["encoders"] = [encoder_pin(e) for e in encs]
    # Write a provisional router.json so the serving path can load the artifact.
    from .runtime import write_meta

    write_meta(out, meta)
    router = load_router(out)
    train_scores: RouterScores = router.score(emb_tr)
    # a mixed table's in-sample figures say nothing and cost minutes (per-source AIQ sweeps)
    metrics = {} if table.fmt == "mixed" else {"train": evaluate_scores(train_t, train_scores, router.meta)}
    if len(te):
        test_t = table.subset(te)
        metrics["holdout"] = evaluate_table(test_t, router.score(emb_all[te]), router.meta)
        metrics["holdout"]["split"] = {"by": split, "frac": holdout, "seed": seed, "fold": fold, "rows": int(len(te))}
    meta["metrics"] = metrics
    if table.fmt == "mixed":  # calibrate on a mix balanced over the source data sets
        from .data import reference_mix

        mix = reference_mix(table.subset(tr))
        # every encoder's embedding of the mix: a tiered policy's scores come from either tier
        train_scores = _pooled([router.score(e[tr][mix]) for e in embs])
        meta["reference_mix"] = {
            "rows": len(mix),
            "per_source": {s: int(n) for s, n in zip(*np.unique(_sources(table.subset(tr))[mix], return_counts=True))},
            "encoders": [e.encoder_id for e in encs],
            "rule": "reference_mix(): up to 1000 training prompts per source data set, seed 0, "
            "scored on each encoder's embedding",
        }
    finish(out, meta, train_scores)
    log(f"wrote {out}")
    return meta, ref
