"""``shunter retrain``: outcomes with feedback -> a new router -> the publish gate -> publish.

1. read the policy's outcomes with feedback from the SQLite store (first pulling the Redis
   stream into it through the ``trainer`` consumer group when ``redis_url`` is set), plus an
   optional LLM-judge JSONL file (stored as feedback, source ``judge``);
2. build the training table (:mod:`gateway.learning.dataset`): recorded embedding, the served
   model's feedback score, the current router's predictions for the unobserved models;
3. adapt the deployed router to the older part with ``routers.adapt.adapt`` (the code
   ``shunter learn-curve`` measures): user feedback as per-model scores, LLM-judge
   preferences as Bradley-Terry pairs, every recorded prompt of the window (labelled or not)
   as the domain; ``--family NAME`` instead retrains that family from scratch with
   ``routers.train.train_router`` (unobserved cells filled by the current router);
4. score current and candidate on the newest ``holdout`` share (:mod:`gateway.learning.gate`);
5. write the versioned artifact and ``report.json``; publish only when the candidate is better
   by ``margin`` (:mod:`gateway.learning.publish`), after which the gateway hot-swaps it.

``--candidate DIR`` skips training and puts an existing artifact through the same gate.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway import secrets
from gateway.learning import dataset, gate, publish

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(s: str | None) -> float | None:
    """``7d``, ``12h``, ``30m``, ``3600`` -> seconds (None: everything)."""
    if not s:
        return None
    m = _SINCE.match(s.strip())
    if not m:
        raise ValueError(f"--since must look like 7d, 12h, 30m or 3600s, got {s!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


@dataclass
class Options:
    config: Path
    policy: str
    since: str | None = "7d"
    judge: Path | None = None
    margin: float = 0.01
    holdout: float = 0.2
    metric: str = "brier"
    out: Path | None = None
    db: Path | None = None
    candidate: Path | None = None
    family: str | None = None
    min_rows: int = 50
    publish: bool = True
    reload_url: str | None = None
    admin_key: str | None = None
    seed: int = 0
    dry_run: bool = False
    min_judged: int = 20


def accepted_tiers(meta: dict[str, Any]) -> set[str]:
    """The encoder tiers whose recorded embeddings a router can learn from: the ones it pins
    (``fast`` the static table, ``accurate`` MiniLM; a router pinning neither takes MiniLM's)."""
    from gateway.runtime import Encoders
    from routers.base import encoder_hashes

    pinned, encoders = encoder_hashes(meta), Encoders()
    tiers = {"fast"} if encoders.fast_hash() in pinned else set()
    if not pinned or encoders.accurate_hash() in pinned:
        tiers.add("accurate")
    return tiers or {"accurate"}  # pins an encoder build no longer served: MiniLM's rows, as before tiers


def _stream_reader(url: str) -> Any:
    """The ``trainer`` group's reader of the Redis outcome streams; an unreachable Redis is an error
    that says what to do, not a traceback (its records would be missing from the retrain)."""
    from gateway.outcomes.redis_stream import StreamReader, StreamUnavailable

    try:
        return StreamReader(url, None, group="trainer")
    except StreamUnavailable as exc:
        raise ValueError(
            f"{exc}: the policy file's server.redis_url holds the outcomes to retrain on; "
            "start Redis, or retrain on a copy pulled earlier (--db) with server.redis_url unset"
        ) from None


def load_labelled(
    opts: Options, cfg: Any, tiers: set[str] | None = None
) -> tuple[list, dict, tuple[np.ndarray, np.ndarray], dict]:
    """(labelled rows, feedback items per request id, every recorded prompt embedding of the window
    from the encoder ``tiers``, info)."""
    from gateway.outcomes.sqlite import SQLiteStore

    db = Path(opts.db or cfg.server.outcomes_path)
    url = secrets.resolve(cfg.server.redis_url)
    if not url and not db.exists():  # a typo'd --db or a gateway that never ran: say so, create nothing
        raise ValueError(f"no outcome store at {db} (the gateway writes it at server.outcomes_path; see --db)")
    reader = _stream_reader(url) if url else None  # connected first: an unreachable Redis creates nothing
    store = SQLiteStore(db)
    info: dict[str, Any] = {"db": str(db)}
    try:
        if reader is not None:
            reader.sink = store
            info["pulled_from_redis"] = reader.pull()
            reader.close()
        if opts.judge:
            judged = dataset.read_judge(opts.judge)
            store.write_feedback_batch(judged)
            info["judge"] = {"file": str(opts.judge), "items": len(judged)}
        span = parse_since(opts.since)
        since = time.time() - span if span else 0.0
        info["since"] = since
        rows = store.labelled(opts.policy, since)
        items = {r.outcome.request_id: store.feedback(r.outcome.request_id) for r in rows}
        domain = dataset.embeddings(store.outcomes(opts.policy, since), tiers)
        info["domain_prompts"] = len(domain[0])
        return rows, items, domain, info
    finally:
        store.close()


# Hyper-parameters tried per family; chosen on the observed cells of the newest part of the
# training slice (the gate's held-back slice stays untouched). Pseudo-labels (the current
# router's predictions) must not drive this choice: they would favour copying the old router.
SEARCH: dict[str, list[dict]] = {
    "cluster": [{"temperature": t} for t in (0.02, 0.05, 0.1, 0.2, 0.5)],
}


def _family_opts(family: str, meta: dict) -> dict:
    if family == "cluster" and meta.get("k"):
        return {"k": int(meta["k"])}
    return {}


ADAPT = "adapt"


def _adapt(current_path: Path, fs: dataset.FeedbackSet, domain: np.ndarray, out: Path, seed: int) -> dict:
    """The deployed router adapted to the labelled requests (routers.adapt, shared with learn-curve)."""
    from routers.adapt import adapt

    meta = adapt(current_path, dataset.to_judged(fs), out, domain_emb=domain, seed=seed)
    return meta


def distilled(current: Any, emb: np.ndarray, models: list[str]) -> np.ndarray:
    """The current router's predicted quality in ``models`` columns (0.5 where it has none): the
    labels of the cells feedback did not observe. A pair router's two columns carry its own
    decision (``routers.adapt.with_pair_decision``): a cascade's quality is relative (strong = 1),
    and distilling it as is would teach "the strong model is always right"."""
    from routers.adapt import with_pair_decision
    from routers.evaluate import align

    sc = current.score(emb)
    predicted = align(sc, models)
    predicted = np.where(np.isfinite(predicted), predicted, 0.5)
    return np.clip(with_pair_decision(current, sc.strong_win, predicted, models), 0.0, 1.0)


def _fit(family: str, fs: dataset.FeedbackSet, current: Any, out: Path, seed: int, opts: dict) -> dict:
    from routers.train import train_router

    predicted = distilled(current, fs.emb, fs.models)
    table = dataset.to_table(fs, dataset.fill_unobserved(fs, predicted), "outcomes")
    meta, _ = train_router(family, table, out, seed=seed, **opts)
    return meta


def select_opts(
    family: str, fs: dataset.FeedbackSet, current: Any, work: Path, seed: int, base: dict
) -> tuple[dict, list]:
    """The search entry with the lowest Brier on the newest 20% of the training rows."""
    from routers.base import load_router

    grid = SEARCH.get(family) or [{}]
    if len(grid) == 1:
        return {**base, **grid[0]}, []
    fit_idx, val_idx = dataset.time_split(fs, 0.2)
    fit_fs, val_fs = fs.take(fit_idx), fs.take(val_idx)
    tried = []
    for i, extra in enumerate(grid):
        opts = {**base, **extra}
        _fit(family, fit_fs, current, work / f"try{i}", seed, opts)
        p = gate.served_predictions(load_router(work / f"try{i}"), val_fs.emb, fs.models, val_fs.served)
        tried.append({"opts": opts, **gate.prediction_metrics(p, val_fs.score)})
    best = min(tried, key=lambda t: t["brier"])
    return best["opts"], tried


GATE_METRICS = ("brier", "log_loss")


def retrain_families() -> list[str]:
    """What ``--family`` may retrain from scratch: ``routers.train``'s families but the answer
    checker, which scores answers, not prompts."""
    from routers.train import FAMILIES

    return sorted(k for k in FAMILIES if k != "answer-check")


def check_options(opts: Options) -> None:
    """Usage errors before any work: each names the option and what it accepts."""
    if not 0.0 < opts.holdout < 1.0:
        raise ValueError(
            f"--holdout is the share of labelled requests held back for the gate: between 0 and 1, got {opts.holdout}"
        )
    if opts.metric not in GATE_METRICS:
        raise ValueError(f"--metric must be one of {', '.join(GATE_METRICS)} (lower is better), got {opts.metric!r}")
    if opts.family not in (None, ADAPT, *retrain_families()):
        raise ValueError(
            f"--family must be one of {', '.join(retrain_families())} (default: adapt), got {opts.family!r}"
        )
    if opts.candidate is not None and not (Path(opts.candidate) / "router.json").is_file():
        raise ValueError(f"--candidate {opts.candidate}: not a router folder (no router.json)")
    if opts.min_rows < 1 or opts.min_judged < 1:
        raise ValueError("--min-rows and --min-judged must be at least 1")


def run(opts: Options, log=print) -> dict[str, Any]:
    from gateway.policy.loader import load_config, resolve_path
    from routers.base import load_router

    check_options(opts)
    cfg = load_config(opts.config)
    if opts.policy not in cfg.policies:
        raise ValueError(f"unknown policy {opts.policy!r} in {opts.config}")
    pol = cfg.policies[opts.policy]
    if pol.router is None:
        raise ValueError(f"policy {opts.policy!r} has no router to retrain")
    current_path = resolve_path(opts.config.parent, pol.router.path)
    current = load_router(current_path)
    family = opts.family or ADAPT
    model_map = {c: pol.router.model_map.get(c, c) for c in pol.candidates}
    tiers = accepted_tiers(getattr(current, "meta", {}) or {})
    rows, items, domain, data_info = load_labelled(opts, cfg, tiers)
    fs = dataset.build(rows, list(current.models), model_map, items, tiers)
    by_id = {r.outcome.request_id: r.outcome for r in rows}
    version = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    out_dir = (opts.out or Path("var/routers")) / opts.policy / version
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "policy": opts.policy,
        "policy_file": str(opts.config),
        "family": family,
        "current": str(current_path),
        "candidate": str(opts.candidate or out_dir),
        "created": time.time(),
        "data": {**data_info, "labelled_requests": len(rows), "usable": len(fs), "skipped": fs.skipped},
        "margin": opts.margin,
        "metric": opts.metric,
    }
    if len(fs) < opts.min_rows:
        return _finish(report, out_dir, False, f"only {len(fs)} labelled requests (need {opts.min_rows})", opts, log)
    tr, te = dataset.time_split(fs, opts.holdout)
    train_fs, test_fs = fs.take(tr), fs.take(te)
    report["data"].update(
        {
            "train_rows": len(train_fs),
            "holdout_rows": len(test_fs),
            "train_time": [float(train_fs.ts.min()), float(train_fs.ts.max())],
            "holdout_time": [float(test_fs.ts.min()), float(test_fs.ts.max())],
            "served_train": train_fs.served_counts(),
            "served_holdout": test_fs.served_counts(),
            "mean_feedback_train": float(train_fs.score.mean()),
        }
    )
    candidate_path = opts.candidate or _train(
        opts, family, current, current_path, train_fs, domain, out_dir, report, log
    )
    candidate = load_router(candidate_path)
    ok, why = _gate(report, current, candidate, test_fs, fs.models, opts)
    ok, why = _shadow_ab(report, cfg, current, candidate, [by_id[i] for i in test_fs.ids], items, opts, ok, why)
    if opts.dry_run:
        report["dry_run"] = True
        report["would_publish"] = ok
        why += "; --dry-run"
    elif ok and opts.publish:
        report["published"] = _publish(opts, cfg, Path(candidate_path))
    elif ok:
        why += "; --no-publish"
    return _finish(report, out_dir, ok and opts.publish and not opts.dry_run, why, opts, log)


def _train(
    opts: Options,
    family: str,
    current: Any,
    current_path: Path,
    train_fs: Any,
    domain: tuple,
    out_dir: Path,
    report: dict,
    log,
) -> Path:
    """Write the candidate to ``out_dir``: the deployed router adapted (the default), or ``family``
    retrained from scratch with its hyper-parameters chosen on the training slice."""
    if family == ADAPT:
        log(f"adapting {current_path} to {len(train_fs)} labelled requests ({report['data']['served_train']})")
        # unlabelled prompts up to the end of the training slice (never the gate's)
        dom = domain[0][domain[1] <= train_fs.ts.max()]
        meta = _adapt(current_path, train_fs, dom, out_dir, opts.seed)
        report["selection"] = {"chosen": meta["adaptation"]["chosen"], "tried": meta["adaptation"]["cv"]}
        return out_dir
    import shutil
    import tempfile

    log(f"retraining {family} on {len(train_fs)} labelled requests ({report['data']['served_train']})")
    work = Path(tempfile.mkdtemp(prefix="retrain-"))
    try:
        chosen, tried = select_opts(family, train_fs, current, work, opts.seed, _family_opts(family, current.meta))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["selection"] = {"chosen": chosen, "tried": tried}
    _fit(family, train_fs, current, out_dir, opts.seed, chosen)
    return out_dir


def _gate(
    report: dict, current: Any, candidate: Any, test_fs: Any, models: list[str], opts: Options
) -> tuple[bool, str]:
    """Both routers' predictions for the served model against the held-back feedback (Brier by
    default), unless one of them scores only relative quality (see :func:`gate.relative`)."""
    m_cur, m_new = (
        gate.prediction_metrics(gate.served_predictions(r, test_fs.emb, models, test_fs.served), test_fs.score)
        for r in (current, candidate)
    )
    report["metrics"] = {"current": m_cur, "candidate": m_new}
    relq = [name for name, r in (("deployed", current), ("candidate", candidate)) if gate.relative(r, test_fs.emb)]
    if relq:
        # a cascade's strong = 1 is not a prediction of the feedback: its Brier would favour any
        # calibrated candidate over a deployed cascade, and refuse any cascade candidate
        report["metrics"]["comparable"] = False
        return False, f"{opts.metric} not comparable: the {' and '.join(relq)} router scores relative quality"
    return gate.decide(m_cur, m_new, opts.margin, opts.metric)


def _publish(opts: Options, cfg: Any, candidate_path: Path) -> dict[str, Any]:
    """Point the policy file at the candidate and, with ``reload_url``, tell the gateway."""
    rel = publish.relative_to_policy(opts.config, candidate_path)
    old = publish.set_router_path(opts.config, opts.policy, rel)
    out: dict[str, Any] = {"router_path": rel, "previous": old}
    if opts.reload_url:
        out["reload"] = publish.trigger_reload(opts.reload_url, opts.admin_key or secrets.admin_key(cfg.server))
    return out


def _shadow_ab(
    report: dict, cfg: Any, current: Any, candidate: Any, outcomes: list, items: dict, opts: Options, ok: bool, why: str
) -> tuple[bool, str]:
    """The counterfactual A/B on the held-back judged requests (:mod:`gateway.learning.abtest`): required
    to pass when the slice has ``min_judged`` of them, and alone when the Brier is not comparable;
    below ``min_judged``, the Brier gate decides alone (and a relative-quality router is refused)."""
    from gateway.learning import abtest

    ab = abtest.run(opts.policy, cfg, current, candidate, outcomes, items, opts.seed, opts.min_judged)
    report["shadow_ab"] = ab
    if ab["requests"] < opts.min_judged:
        return ok, why + f"; A/B not applied ({ab['reason']})"
    if report["metrics"].get("comparable") is False:  # the A/B alone decides
        return bool(ab["passed"]), why + ", the A/B decides: " + ab["reason"]
    return ok and ab["passed"], why + "; A/B: " + ab["reason"]


def _finish(report: dict, out_dir: Path, published: bool, why: str, opts: Options, log) -> dict:
    report["decision"] = "published" if published else "refused"
    report["reason"] = why
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    report["report_file"] = str(out_dir / "report.json")
    log(f"{report['decision']}: {why} (report: {out_dir / 'report.json'})")
    return report
