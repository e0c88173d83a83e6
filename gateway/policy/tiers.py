"""The router stage's embedding step: which encoder tier scores a prompt.

A policy's ``encoder`` (``routers.encoders``):

- ``accurate``: MiniLM (the micro-batched ``AsyncEmbedder``), then the router;
- ``fast``: the static table (inline, ~0.05 ms), then the router;
- ``tiered``: the fast tier first; when its decision margin (how far the deciding score is from
  flipping the choice: ``routers.decision.Choice.margin``, in calibration percentiles for a
  threshold on ``strong_win``, ``routers.encoders.tiered``) is below ``encoder_band``, the prompt
  is embedded with MiniLM cut to ``ESCALATION_MAX_TOKENS`` (64: head and tail, which routes as
  well as 256 and costs far less) and scored again, and that decision stands;
- ``auto`` (the default): ``tiered`` when the policy's router(s) accept both encoders, else the
  one they were trained on.

A tiered policy scores the fast embedding with ``router.fast_path`` when given (a router trained
on the fast encoder), else with ``router.path`` (a router trained on both encoders' embeddings;
both tiers give L2-normalised 384-d vectors in MiniLM's space). Which tier decided is the
decision's ``encoder_tier``: the ``x-shunter-encoder-tier`` header and the outcome record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gateway import metrics
from routers.decision import Objective, choose
from routers.encoders.tiered import ESCALATION_MAX_TOKENS, percentile_margin

if TYPE_CHECKING:
    from gateway.runtime import PolicyRuntime, Runtime


@dataclass
class Scored:
    scores: dict[str, float]
    strong_win: float | None
    embedding: np.ndarray | None
    tier: str  # "fast" or "accurate"
    margin: float | None = None  # the fast tier's decision margin (tiered policies)


def router_scores(pr: PolicyRuntime, router: Any, emb: np.ndarray, cands: list[str]) -> tuple[dict, float | None]:
    """Per-candidate predicted quality and ``strong_win`` from one router on one embedding."""
    out = router.score(emb[None, :])
    inner = {m: i for i, m in enumerate(out.models)}
    scores = {c: float(out.quality[0, inner[pr.model_map.get(c, c)]]) for c in cands if pr.model_map.get(c, c) in inner}
    strong_win = None
    own_pair = (out.strong, out.weak) == (pr.model_map.get(pr.strong or ""), pr.model_map.get(pr.weak or ""))
    if out.strong_win is not None and own_pair:
        strong_win = float(out.strong_win[0])
    elif pr.strong in scores and pr.weak in scores:  # any other pair: same mapping as its calibration
        strong_win = min(1.0, max(0.0, 0.5 + 0.5 * (scores[pr.strong] - scores[pr.weak])))
    return scores, strong_win


def margin_of(
    pr: PolicyRuntime,
    scores: dict[str, float],
    strong_win: float | None,
    live: list[str],
    costs: dict[str, float],
    objective: Objective,
) -> float:
    """How far the fast tier's choice among the live candidates is from flipping (inf: nothing to flip)."""
    live_scored = {c: scores[c] for c in live if c in scores}
    if len(live_scored) < 2:
        return float("inf")
    strong = pr.strong if pr.strong in live_scored else None
    weak = pr.weak if pr.weak in live_scored else None
    pair_rule = objective.kind in ("threshold", "target_strong_share") and strong_win is not None and strong and weak
    if pair_rule and pr.fast_cdf is not None:  # in calibration percentiles (routers.encoders.tiered)
        return percentile_margin(strong_win, objective.value, pr.fast_cdf)  # type: ignore[arg-type]
    return choose(live_scored, costs, objective, strong=strong, weak=weak, strong_win=strong_win).margin


async def score(
    rt: Runtime,
    pr: PolicyRuntime,
    text: str,
    emb: np.ndarray | None,
    cands: list[str],
    live: list[str],
    costs: dict[str, float],
    objective: Objective,
) -> Scored:
    """Score ``text`` with the policy's tier(s); ``emb`` is a MiniLM embedding already made, if any."""
    tier = pr.encoder
    if tier == "accurate" or (emb is not None and tier == "tiered"):  # MiniLM already paid for: use it
        if emb is None:
            emb = await rt.embed(text)
        return Scored(*router_scores(pr, pr.router, emb, cands), emb, "accurate")
    fast_emb = pr.fast_encoder.embed_one(text)
    scores, strong_win = router_scores(pr, pr.fast_router, fast_emb, cands)
    if tier == "fast":
        metrics.ENCODER_TIER.labels(pr.name, "fast").inc()
        return Scored(scores, strong_win, fast_emb, "fast")
    margin = margin_of(pr, scores, strong_win, live, costs, objective)
    if margin >= pr.cfg.encoder_band:
        metrics.ENCODER_TIER.labels(pr.name, "fast").inc()
        return Scored(scores, strong_win, fast_emb, "fast", margin)
    emb = await rt.embed(text, max_tokens=ESCALATION_MAX_TOKENS)
    metrics.ENCODER_TIER.labels(pr.name, "accurate").inc()
    return Scored(*router_scores(pr, pr.router, emb, cands), emb, "accurate", margin)
