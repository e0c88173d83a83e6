"""The one decision function shared by the gateway, ``shunter score``/``eval`` and replay.

``choose`` turns per-model predicted quality into a choice, so offline numbers describe live
behaviour exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

ObjectiveKind = Literal["threshold", "cost_weight", "target_strong_share", "max_cost_per_request"]


@dataclass(frozen=True)
class Objective:
    """How a policy trades quality against cost.

    - ``threshold``: pair routers route to ``strong`` when ``strong_win >= threshold``; with more
      than two models, the cheapest model whose predicted quality is ``>= threshold`` wins
      (the best-quality model when none qualifies).
    - ``cost_weight``: argmax over models of ``quality - cost_weight * cost / max_cost``
      (cost normalised by the most expensive candidate, so ``cost_weight`` is unit-free).
    - ``target_strong_share``: resolved to a ``threshold`` at load time from the router's stored
      calibration quantiles; ``choose`` treats it as ``threshold``.
    - ``max_cost_per_request``: the best-quality model whose expected cost (USD) fits the cap;
      the cheapest model when none fits.
    """

    kind: ObjectiveKind
    value: float


@dataclass(frozen=True)
class Choice:
    model: str
    reason: str
    ranking: tuple[str, ...]  # every candidate, best first: the fallback order
    # How far the deciding score is from flipping the choice (same units as the objective's
    # score: strong_win or quality minus the threshold, a utility or quality gap; inf when no
    # score could flip it). A tiered policy re-scores with MiniLM when this is below its band.
    margin: float = float("inf")


def choose(
    quality: Mapping[str, float],
    cost: Mapping[str, float],
    objective: Objective,
    *,
    strong: str | None = None,
    weak: str | None = None,
    strong_win: float | None = None,
) -> Choice:
    """Pick a model from per-model predicted quality and expected cost (USD per request).

    ``quality`` and ``cost`` are keyed by candidate model name; every candidate must appear in
    ``quality``. Missing costs count as 0. ``strong``/``weak``/``strong_win`` describe a pair
    router's output; when given with a threshold objective the pair rule is used.
    """
    models: Sequence[str] = list(quality)
    if not models:
        raise ValueError("choose() needs at least one candidate")
    c = {m: float(cost.get(m, 0.0)) for m in models}
    by_quality = sorted(models, key=lambda m: (-quality[m], c[m], m))
    kind, value = objective.kind, float(objective.value)

    margin = float("inf")
    if kind in ("threshold", "target_strong_share"):
        if strong_win is not None and strong is not None and weak is not None and strong in quality and weak in quality:
            pick = strong if strong_win >= value else weak
            reason = f"strong_win={strong_win:.3f} {'>=' if pick == strong else '<'} threshold={value:.3f}"
            margin = abs(strong_win - value)
        else:
            ok = [m for m in models if quality[m] >= value]
            if ok:
                pick = min(ok, key=lambda m: (c[m], -quality[m], m))
                reason = f"cheapest with quality>={value:.3f}"
            else:
                pick = by_quality[0]
                reason = f"none reaches quality {value:.3f}; best quality"
            # the choice flips when any model cheaper than the pick (or the pick) crosses the threshold
            near = [m for m in models if c[m] <= c[pick]] or models
            margin = min(abs(quality[m] - value) for m in near)
    elif kind == "cost_weight":
        top = max(c.values()) or 1.0
        utility = {m: quality[m] - value * c[m] / top for m in models}
        pick = max(models, key=lambda m: (utility[m], -c[m], m))
        reason = f"argmax quality-{value:g}*cost (u={utility[pick]:.3f})"
        margin = _gap(utility, pick)
    elif kind == "max_cost_per_request":
        ok = [m for m in models if c[m] <= value]
        if ok:
            pick = max(ok, key=lambda m: (quality[m], -c[m], m))
            reason = f"best quality within ${value:g}/request"
            margin = _gap({m: quality[m] for m in ok}, pick)
        else:
            pick = min(models, key=lambda m: (c[m], m))
            reason = f"no model within ${value:g}/request; cheapest"
    else:  # pragma: no cover - guarded by the policy schema
        raise ValueError(f"unknown objective {kind!r}")

    ranking = (pick, *[m for m in by_quality if m != pick])
    return Choice(model=pick, reason=reason, ranking=ranking, margin=margin)


def _gap(score: Mapping[str, float], pick: str) -> float:
    """The pick's lead over the runner-up (inf when it has no rival)."""
    rivals = [v for m, v in score.items() if m != pick]
    return score[pick] - max(rivals) if rivals else float("inf")


def expected_cost(prompt_tokens: int, price_in_per_m: float, price_out_per_m: float, output_tokens: float) -> float:
    """Expected USD cost of one call: prompt tokens at the input price plus typical output."""
    return (prompt_tokens * price_in_per_m + output_tokens * price_out_per_m) / 1e6
