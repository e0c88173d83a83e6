"""Online learning over (cluster x model): estimates, exploration and the choice (pure numpy).

Per arm (cluster c, model m) the shared state keeps ``n`` (feedback count), ``q`` (sum of
feedback scores), ``p`` (sum of the router's predicted quality for those requests) and ``c``
(sum of cost in USD). The estimate for a prompt x corrects the router's prediction by the
arm's observed bias, shrunk towards the router by ``prior_strength`` pseudo-observations::

    q_hat(x, m) = router(x, m) + (q - p + k * B_m) / (n + k),   B_m = (Q_m - P_m) / (N_m + k)

where ``B_m`` is the model's bias over all clusters (capital letters: sums over clusters), so
an arm with little feedback borrows what the model's other clusters taught (hierarchical
shrinkage: a model found over-rated in one cluster is distrusted a little everywhere). With
no router the prediction is 0.5, so ``q_hat`` is a shrunk empirical mean. The choice
uses ``routers.decision.choose`` (one decision function) with ``cost_weight`` when the online
block sets it, otherwise the policy's objective. Thompson sampling draws each model's quality
from ``Beta(1 + q_hat (n + k), 1 + (1 - q_hat)(n + k))``; epsilon-greedy picks a random other
model. A pick that differs from the greedy one counts as exploration, and exploration is
refused once it would exceed ``explore`` of the policy's decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from routers.decision import Objective, choose


@dataclass
class Arm:
    n: float = 0.0
    q: float = 0.0
    p: float = 0.0
    c: float = 0.0

    @property
    def mean(self) -> float | None:
        return self.q / self.n if self.n else None


def parse_stats(raw: Mapping[str, str]) -> dict[tuple[int, str], Arm]:
    """Hash fields ``<cluster>|<model>|<stat>`` -> arms."""
    arms: dict[tuple[int, str], Arm] = {}
    for k, v in raw.items():
        parts = k.rsplit("|", 2)
        if len(parts) != 3 or not parts[0].lstrip("-").isdigit():
            continue
        arm = arms.setdefault((int(parts[0]), parts[1]), Arm())
        setattr(arm, parts[2], float(v))
    return arms


def global_bias(arms: Mapping[tuple[int, str], Arm], model: str, k: float) -> float:
    """The model's router bias over every cluster, shrunk towards 0 by ``k``."""
    n = q = p = 0.0
    for (_, m), a in arms.items():
        if m == model:
            n, q, p = n + a.n, q + a.q, p + a.p
    return (q - p) / (n + k)


def estimate(prior: float, arm: Arm | None, k: float, bias0: float = 0.0) -> float:
    """Router prediction + the arm's observed bias, shrunk towards the model's global bias ``bias0``."""
    n, diff = (arm.n, arm.q - arm.p) if arm is not None else (0.0, 0.0)
    return float(np.clip(prior + (diff + k * bias0) / (n + k), 0.0, 1.0))


def assign(centroids: np.ndarray | None, emb: np.ndarray | None) -> int:
    """The nearest centroid (cosine) of an L2-normalised embedding; 0 without centroids."""
    if centroids is None or emb is None or len(centroids) == 0:
        return 0
    return int(np.argmax(centroids @ np.asarray(emb, np.float32).reshape(-1)))


@dataclass
class Pick:
    ranking: list[str]
    explored: bool
    greedy: str
    estimates: dict[str, float]


def pick(
    models: list[str],
    priors: Mapping[str, float],
    arms: Mapping[tuple[int, str], Arm],
    cluster: int,
    costs: Mapping[str, float],
    objective: Objective,
    *,
    mode: str,
    explore: float,
    may_explore: bool,
    k: float,
    rng: np.random.Generator,
) -> Pick:
    """Rank ``models`` (live candidates) for one request."""
    est = {m: estimate(priors.get(m, 0.5), arms.get((cluster, m)), k, global_bias(arms, m, k)) for m in models}
    greedy = choose(est, costs, objective)
    choice = greedy.model
    if may_explore and len(models) > 1:
        if mode == "thompson":
            draw = {}
            for m in models:
                arm = arms.get((cluster, m))
                w = (arm.n if arm else 0.0) + k
                draw[m] = float(rng.beta(1.0 + est[m] * w, 1.0 + (1.0 - est[m]) * w))
            choice = choose(draw, costs, objective).model
        elif rng.random() < explore:
            choice = str(rng.choice([m for m in models if m != greedy.model]))
    rest = [m for m in greedy.ranking if m != choice]
    return Pick([choice, *rest], choice != greedy.model, greedy.model, est)
