"""The opt-in online mode of a policy (``online:`` block): bandit state, decision hook, feedback.

State lives in ``app.state.shared`` (``SharedState``: Redis when ``redis_url`` is set, so every
replica learns from every replica's feedback; in process otherwise):

- ``bandit:<policy>``: hash ``<cluster>|<model>|n|q|p|c`` (see :mod:`gateway.learning.bandit`);
- ``bandit:<policy>:meta``: hash ``decisions``, ``explored``.

``engine.decide`` calls :func:`rank` after the router ranked the live candidates;
``/v1/feedback`` calls :func:`learn` once per new (request_id, source) item.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway import metrics
from gateway.learning import bandit
from routers.decision import Objective

log = logging.getLogger("shunter.online")

# How long a replica reuses the arms it read (one shared-state read per request otherwise);
# SHUNTER_BANDIT_CACHE_S=0 reads on every decision (deterministic simulations).
CACHE_SECONDS = float(os.environ.get("SHUNTER_BANDIT_CACHE_S", "0.5"))
_state: Any = None
_arms_cache: dict[str, tuple[float, dict]] = {}
_centroids: dict[str, np.ndarray | None] = {}
# SHUNTER_BANDIT_SEED makes simulations repeatable; unset in production (fresh entropy).
_rng = np.random.default_rng(int(os.environ["SHUNTER_BANDIT_SEED"]) if os.environ.get("SHUNTER_BANDIT_SEED") else None)


def bind(shared: Any) -> None:
    """Use this ``SharedState`` (called once by the app's lifespan)."""
    global _state
    _state = shared
    _arms_cache.clear()


def _key(policy: str) -> str:
    return f"bandit:{policy}"


def load_centroids(path: Path) -> np.ndarray:
    """``centroids.npy`` (a file or inside a folder) or ``router.json``'s ``centroids``; rows L2-normalised."""
    if path.is_dir():
        npy = path / "centroids.npy"
        arr = np.load(npy) if npy.exists() else np.asarray(json.loads((path / "router.json").read_text())["centroids"])
    else:
        arr = np.load(path)
    arr = np.asarray(arr, np.float32)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-9)


def centroids_for(rt: Any, pr: Any) -> np.ndarray | None:
    ref = pr.cfg.online.clusters if pr.cfg.online else None
    if ref is None:
        return None
    path = (Path(rt.path).parent / ref).resolve()
    key = str(path)
    if key not in _centroids:
        _centroids[key] = load_centroids(path)
    return _centroids[key]


def cluster_of(rt: Any, pr: Any, emb: np.ndarray | None) -> tuple[int, int]:
    """(cluster, number of clusters): ``online.clusters`` centroids, else the cluster router's
    soft assignment (its most likely cluster), else one cluster."""
    cents = centroids_for(rt, pr)
    if cents is not None:
        return bandit.assign(cents, emb), len(cents)
    assign = getattr(pr.router, "assign", None)
    if assign is not None and emb is not None:
        p = assign(np.asarray(emb, np.float32)[None, :])[0]
        return int(np.argmax(p)), int(len(p))
    return 0, 1


def objective_for(pr: Any) -> Objective:
    w = pr.cfg.online.cost_weight
    return Objective("cost_weight", w) if w is not None else pr.objective


async def arms(policy: str, fresh: bool = False) -> dict:
    now = time.monotonic()
    hit = _arms_cache.get(policy)
    if hit and not fresh and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    parsed = bandit.parse_stats(await _state.hgetall(_key(policy)))
    _arms_cache[policy] = (now, parsed)
    return parsed


async def rank(
    rt: Any,
    pr: Any,
    ordered: list[str],
    scores: dict[str, float],
    costs: dict[str, float],
    emb: np.ndarray | None,
    reason: str,
    detail: str,
) -> tuple[list[str], str, str]:
    """Re-rank the live candidates with the bandit; returns (ranking, reason, detail)."""
    if _state is None or len(ordered) < 1:
        return ordered, reason, detail
    cfg = pr.cfg.online
    cluster, _ = cluster_of(rt, pr, emb)
    meta = _key(pr.name) + ":meta"
    decisions = await _state.hincr(meta, "decisions", 1)
    explored_so_far = float((await _state.hgetall(meta)).get("explored", 0) or 0)
    may = explored_so_far + 1 <= cfg.explore * decisions
    p = bandit.pick(
        ordered,
        scores,
        await arms(pr.name),
        cluster,
        costs,
        objective_for(pr),
        mode=cfg.mode,
        explore=cfg.explore,
        may_explore=may,
        k=cfg.prior_strength,
        rng=_rng,
    )
    ranking = p.ranking
    if p.explored:
        if await _state.hincr(meta, "explored", 1) > cfg.explore * decisions:  # another replica won the race
            await _state.hincr(meta, "explored", -1)
            ranking = [p.greedy, *[m for m in ranking if m != p.greedy]]
        else:
            metrics.BANDIT_EXPLORATIONS.labels(pr.name).inc()
            return ranking, "explore", f"online {cfg.mode} cluster={cluster} explore {ranking[0]} (greedy {p.greedy})"
    return ranking, "online", f"online {cfg.mode} cluster={cluster} q_hat={p.estimates[ranking[0]]:.3f}; {detail}"


async def learn(rt: Any, outcome: Any, score: float) -> bool:
    """Add one feedback item to the arm of the request's (cluster, served model)."""
    pol = rt.policies.get(outcome.policy or "")
    if _state is None or pol is None or pol.cfg.online is None or not outcome.served:
        return False
    emb = np.frombuffer(outcome.embedding, np.float16).astype(np.float32) if outcome.embedding else None
    cluster, _ = cluster_of(rt, pol, emb)
    key, f = _key(pol.name), f"{cluster}|{outcome.served}|"
    await _state.hincr(key, f + "n", 1.0)
    await _state.hincr(key, f + "q", float(score))
    await _state.hincr(key, f + "p", float(outcome.scores.get(outcome.served, 0.5)))
    await _state.hincr(key, f + "c", float(outcome.cost_usd or 0.0))
    return True


async def snapshot(rt: Any, name: str) -> dict:
    """What ``GET /admin/policies/{name}/state`` shows."""
    pr = rt.policies[name]
    cfg = pr.cfg.online
    out: dict[str, Any] = {"policy": name, "online": cfg.model_dump() if cfg else None}
    if cfg is None or _state is None:
        return out
    raw = await arms(name, fresh=True)
    meta = await _state.hgetall(_key(name) + ":meta")
    decisions = float(meta.get("decisions", 0) or 0)
    explored = float(meta.get("explored", 0) or 0)
    mean_cost = {(c, m): a.c / a.n for (c, m), a in raw.items() if a.n}
    top = max(mean_cost.values(), default=0.0) or 1.0
    w = cfg.cost_weight or 0.0
    rows = []
    for (c, m), a in sorted(raw.items()):
        mean_q = a.q / a.n if a.n else None
        mean_c = a.c / a.n if a.n else None
        rows.append(
            {
                "cluster": c,
                "model": m,
                "n": a.n,
                "mean_score": mean_q,
                "mean_router_prediction": a.p / a.n if a.n else None,
                "mean_cost_usd": mean_c,
                "reward": None if mean_q is None else mean_q - w * (mean_c or 0.0) / top,
            }
        )
    out.update(
        {
            "clusters": _n_clusters(rt, pr),
            "decisions": decisions,
            "explored": explored,
            "explored_share": explored / decisions if decisions else 0.0,
            "feedback": sum(a.n for a in raw.values()),
            "arms": rows,
            "backend": type(_state).__name__,
        }
    )
    return out


def _n_clusters(rt: Any, pr: Any) -> int:
    cents = centroids_for(rt, pr)
    if cents is not None:
        return int(len(cents))
    meta = getattr(pr.router, "meta", {}) or {}
    return int(meta.get("k") or 1) if getattr(pr.router, "assign", None) is not None else 1
