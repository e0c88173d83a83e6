"""The opt-in online mode of a policy (``online:`` block): bandit state, decision hook, feedback.

``OnlineLearner`` (one per process, in ``Services.learner``) holds the ``SharedState`` (: Redis when ``redis_url`` is set, so every
replica learns from every replica's feedback; in process otherwise):

- ``bandit:<policy>``: hash ``<cluster>|<model>|n|q|p|c`` (see :mod:`gateway.learning.bandit`);
- ``bandit:<policy>:meta``: hash ``decisions``, ``explored``.

The decide pipeline's online stage calls :meth:`OnlineLearner.rank` after the router ranked the
live candidates; ``/v1/feedback`` calls :meth:`OnlineLearner.learn` once per new (request_id,
source) item. Cluster centroids are read once per file and forgotten on a policy reload.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway import metrics
from gateway.learning import bandit
from routers.decision import Objective


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


def objective_for(pr: Any) -> Objective:
    w = pr.cfg.online.cost_weight
    return Objective("cost_weight", w) if w is not None else pr.objective


class OnlineLearner:
    """Bandit state access for every policy with an ``online:`` block.

    ``cache_seconds``: how long this replica reuses the arms it read (one shared-state read per
    request otherwise; 0 reads on every decision, for deterministic simulations). ``seed`` makes
    simulations repeatable; None in production (fresh entropy).
    """

    def __init__(self, shared: Any, cache_seconds: float = 0.5, seed: int | None = None) -> None:
        self.shared = shared
        self.cache_seconds = cache_seconds
        self.rng = np.random.default_rng(seed)
        self._arms_cache: dict[str, tuple[float, dict]] = {}
        self._centroids: dict[str, np.ndarray] = {}

    def invalidate(self) -> None:
        """Forget centroids and cached arms (a reload may point at new files)."""
        self._centroids.clear()
        self._arms_cache.clear()

    def centroids_for(self, rt: Any, pr: Any) -> np.ndarray | None:
        ref = pr.cfg.online.clusters if pr.cfg.online else None
        if ref is None:
            return None
        key = str((Path(rt.path).parent / ref).resolve())
        if key not in self._centroids:
            self._centroids[key] = load_centroids(Path(key))
        return self._centroids[key]

    def cluster_of(self, rt: Any, pr: Any, emb: np.ndarray | None) -> tuple[int, int]:
        """(cluster, number of clusters): ``online.clusters`` centroids, else the cluster router's
        soft assignment (its most likely cluster), else one cluster."""
        cents = self.centroids_for(rt, pr)
        if cents is not None:
            return bandit.assign(cents, emb), len(cents)
        assign = getattr(pr.router, "assign", None)
        if assign is not None and emb is not None:
            p = assign(np.asarray(emb, np.float32)[None, :])[0]
            return int(np.argmax(p)), int(len(p))
        return 0, 1

    async def arms(self, policy: str, fresh: bool = False) -> dict:
        now = time.monotonic()
        hit = self._arms_cache.get(policy)
        if hit and not fresh and now - hit[0] < self.cache_seconds:
            return hit[1]
        parsed = bandit.parse_stats(await self.shared.hgetall(_key(policy)))
        self._arms_cache[policy] = (now, parsed)
        return parsed

    async def rank(
        self,
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
        if len(ordered) < 1:
            return ordered, reason, detail
        cfg = pr.cfg.online
        cluster, _ = self.cluster_of(rt, pr, emb)
        meta = _key(pr.name) + ":meta"
        decisions = await self.shared.hincr(meta, "decisions", 1)
        explored_so_far = float((await self.shared.hgetall(meta)).get("explored", 0) or 0)
        may = explored_so_far + 1 <= cfg.explore * decisions
        p = bandit.pick(
            ordered,
            scores,
            await self.arms(pr.name),
            cluster,
            costs,
            objective_for(pr),
            mode=cfg.mode,
            explore=cfg.explore,
            may_explore=may,
            k=cfg.prior_strength,
            rng=self.rng,
        )
        ranking = p.ranking
        if p.explored:
            if await self.shared.hincr(meta, "explored", 1) > cfg.explore * decisions:  # another replica won
                await self.shared.hincr(meta, "explored", -1)
                ranking = [p.greedy, *[m for m in ranking if m != p.greedy]]
            else:
                metrics.BANDIT_EXPLORATIONS.labels(pr.name).inc()
                return (
                    ranking,
                    "explore",
                    f"online {cfg.mode} cluster={cluster} explore {ranking[0]} (greedy {p.greedy})",
                )
        return ranking, "online", f"online {cfg.mode} cluster={cluster} q_hat={p.estimates[ranking[0]]:.3f}; {detail}"

    async def learn(self, rt: Any, outcome: Any, score: float) -> bool:
        """Add one feedback item to the arm of the request's (cluster, served model)."""
        pol = rt.policies.get(outcome.policy or "")
        if pol is None or pol.cfg.online is None or not outcome.served:
            return False
        emb = np.frombuffer(outcome.embedding, np.float16).astype(np.float32) if outcome.embedding else None
        cluster, _ = self.cluster_of(rt, pol, emb)
        key, f = _key(pol.name), f"{cluster}|{outcome.served}|"
        await self.shared.hincr(key, f + "n", 1.0)
        await self.shared.hincr(key, f + "q", float(score))
        await self.shared.hincr(key, f + "p", float(outcome.scores.get(outcome.served, 0.5)))
        await self.shared.hincr(key, f + "c", float(outcome.cost_usd or 0.0))
        return True

    async def snapshot(self, rt: Any, name: str) -> dict:
        """What ``GET /admin/policies/{name}/state`` shows."""
        pr = rt.policies[name]
        cfg = pr.cfg.online
        out: dict[str, Any] = {"policy": name, "online": cfg.model_dump() if cfg else None}
        if cfg is None:
            return out
        raw = await self.arms(name, fresh=True)
        meta = await self.shared.hgetall(_key(name) + ":meta")
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
                "clusters": self._n_clusters(rt, pr),
                "decisions": decisions,
                "explored": explored,
                "explored_share": explored / decisions if decisions else 0.0,
                "feedback": sum(a.n for a in raw.values()),
                "arms": rows,
                # the store behind the outage wrapper (FailSoft keeps the Redis state as .strict)
                "backend": type(getattr(self.shared, "strict", self.shared)).__name__,
            }
        )
        return out

    def _n_clusters(self, rt: Any, pr: Any) -> int:
        cents = self.centroids_for(rt, pr)
        if cents is not None:
            return int(len(cents))
        meta = getattr(pr.router, "meta", {}) or {}
        return int(meta.get("k") or 1) if getattr(pr.router, "assign", None) is not None else 1
