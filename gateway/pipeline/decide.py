"""Decide: which model answers, and in what order the rest are tried.

For a policy request the stages run in order, each returning a ``Decision`` or ``None`` (no
opinion, next stage):

1. :func:`sticky_stage`: a known session stays on its model (reason ``sticky``);
2. :func:`rules_stage`: the policy's rules, in order (reason ``rule``); a rule may only set a
   reasoning effort and let the later stages pick the model;
3. :func:`semantic_stage`: semantic routes (reason ``semantic``);
4. :func:`router_stage`: the learned router (or the policy order), ``routers.decision.choose``;
   the prompt is embedded by the policy's encoder tier (fast, accurate, or fast then MiniLM when
   the decision is inside the band: ``gateway.policy.tiers``);
5. :func:`online_stage`: the opt-in bandit re-ranks the router's live candidates.

A rule or route may hand the request to another policy: :func:`decide_policy` runs again for
it. Per-request overrides and the hard filters (availability, capabilities, context window)
are applied first, by :class:`Pool`; reasoning rules on the router's scores and the client's
own ``reasoning_effort`` are settled last. The candidates left, then the policy's
``fallbacks``, form the try order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gateway import metrics
from gateway.errors import APIError
from gateway.policy import feasible, reasoning, rules, sticky, tiers
from gateway.policy.engine import Decision, Target, apply_overrides
from gateway.policy.rules import RuleInput
from gateway.protocol import ChatCompletionRequest, CompletionRequest
from routers.decision import Objective, choose

if TYPE_CHECKING:
    from gateway.learning.online import OnlineLearner
    from gateway.runtime import PolicyRuntime, Runtime
    from gateway.state import SharedState

MAX_DEPTH = 4


def policy_text(req: ChatCompletionRequest | CompletionRequest, mode: str) -> str:
    """The text a policy embeds and matches: its ``embed`` mode over the messages, or the prompt."""
    if isinstance(req, CompletionRequest):
        return req.prompt_text()
    from routers.encoder import select_text

    return select_text([m.model_dump(exclude_none=True) for m in req.messages], mode)


def needs_of(req: ChatCompletionRequest | CompletionRequest) -> set[str]:
    needs: set[str] = set()
    if isinstance(req, ChatCompletionRequest):
        if req.wants_tools():
            needs.add("tools")
        if req.has_image():
            needs.add("vision")
        if req.wants_json():
            needs.add("json_mode")
    return needs


@dataclass
class Inputs:
    """What every stage reads: the request, its text for the policy at hand, and the services it uses."""

    rt: Runtime
    req: ChatCompletionRequest | CompletionRequest
    text: str
    headers: dict[str, str]
    prompt_tokens: int
    shared: SharedState | None = None
    learner: OnlineLearner | None = None
    depth: int = 0


@dataclass
class Effort:
    """A reasoning effort an earlier stage asked for without picking a model."""

    value: str | None = None
    why: str = ""


@dataclass
class Pool:
    """One policy's candidates for one request, after overrides and hard filters."""

    rt: Runtime
    pr: PolicyRuntime
    objective: Objective
    cands: list[str]
    restricted: bool
    needs: set[str]
    max_out: int
    prompt_tokens: int
    skipped: dict[str, str] = field(default_factory=dict)
    live: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    emb: np.ndarray | None = None
    costs: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, inp: Inputs, pr: PolicyRuntime, target: Target) -> Pool:
        if inp.depth == 0:
            objective, cands = apply_overrides(pr, target, inp.req.shunter, inp.headers)
        else:  # handed over by a rule or route: the target policy's own settings
            objective, cands = pr.objective, list(pr.cfg.candidates)
        max_out = getattr(inp.req, "max_tokens", None) or getattr(inp.req, "max_completion_tokens", None) or 0
        pool = cls(
            inp.rt,
            pr,
            objective,
            cands,
            cands != list(pr.cfg.candidates),
            needs_of(inp.req),
            max_out,
            inp.prompt_tokens,
        )
        pool.live = [c for c in cands if pool.usable(c)]
        pool.fallbacks = [c for c in pr.cfg.fallbacks if c not in cands and pool.usable(c)]
        return pool

    def usable(self, name: str) -> bool:
        client = self.rt.clients[name]
        ok, why = client.available()
        if not ok:
            self.skipped[name] = why
            return False
        missing = self.needs - set(client.cfg.capabilities)
        if missing:
            self.skipped[name] = f"lacks {', '.join(sorted(missing))}"
            return False
        if self.prompt_tokens + self.max_out > client.cfg.context_window:
            self.skipped[name] = (
                f"prompt of ~{self.prompt_tokens} tokens exceeds context window {client.cfg.context_window}"
            )
            return False
        return True

    def allowed(self, model: str) -> bool:
        if self.restricted and model not in self.cands:
            self.skipped.setdefault(model, "excluded by the candidates override")
            return False
        return self.usable(model)

    def rank(self, first: str) -> list[str]:
        return [first] + [c for c in self.live if c != first] + [c for c in self.fallbacks if c != first]

    def made(self, model: str, reason: str, detail: str, **kw: Any) -> Decision:
        return Decision(
            self.pr.name,
            model,
            self.rank(model),
            reason,
            detail,
            prompt_tokens=self.prompt_tokens,
            objective=self.objective.kind,
            objective_value=self.objective.value,
            skipped=self.skipped,
            **kw,
        )

    def why_skipped(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.skipped.items())


async def decide(inp: Inputs, target: Target) -> Decision:
    """Decide the model (and try order) for one request; see the module docstring for the order."""
    t0 = time.perf_counter()
    if target.passthrough:
        ok, why = inp.rt.clients[target.passthrough].available()
        if not ok:  # a missing key or a local server that is down: say so, try no network call
            raise APIError(
                503,
                f"Model '{target.passthrough}' is unavailable: {why}.",
                code="model_unavailable",
                param="model",
            )
        return Decision(
            None,
            target.passthrough,
            [target.passthrough],
            "passthrough",
            prompt_tokens=inp.prompt_tokens,
            seconds=time.perf_counter() - t0,
        )
    d = await decide_policy(inp, target)
    d.seconds = time.perf_counter() - t0
    metrics.ROUTING_DURATION.labels(target.policy or "").observe(d.seconds)
    return d


async def decide_policy(inp: Inputs, target: Target) -> Decision:
    pr = inp.rt.policies[target.policy]  # type: ignore[index]
    pool = Pool.build(inp, pr, target)
    session = (
        sticky.session_key(pr.cfg.sticky, inp.req, inp.headers) if inp.depth == 0 and inp.shared is not None else None
    )
    effort = Effort()
    d = await sticky_stage(inp, pool, session)
    if d is None:
        d = await rules_stage(inp, pool, effort)
    if d is None:
        d = await semantic_stage(inp, pool, effort)
    if d is None:
        d = await router_stage(inp, pool)
        d = await online_stage(inp, pool, d) or d
        apply_reasoning_rules(pool, d)
        if effort.value and not d.reasoning_effort:
            d.reasoning_effort = effort.value
            d.detail += f"; reasoning_effort {effort.value} by {effort.why}"
    if inp.depth == 0:
        settle_effort(inp.rt, inp.req, d)
        if session:
            await sticky.remember(inp.shared, pr.name, session, d.model, d.reasoning_effort, pr.cfg.sticky.ttl)  # type: ignore[union-attr]
    d.prompt_tokens = inp.prompt_tokens
    return d


async def handover(
    inp: Inputs, pool: Pool, policy: str, reason: str, what: str, effort: str | None, name: str
) -> Decision:
    """A rule or semantic route (``name``) sends the request to another policy: decide again there."""
    if inp.depth >= MAX_DEPTH:
        raise APIError(500, f"Policy hand-over deeper than {MAX_DEPTH} levels at '{pool.pr.name}'.", code="policy_loop")
    sub_inp = Inputs(
        inp.rt,
        inp.req,
        policy_text(inp.req, inp.rt.policies[policy].cfg.embed),
        inp.headers,
        inp.prompt_tokens,
        inp.shared,
        inp.learner,
        inp.depth + 1,
    )
    sub = await decide_policy(sub_inp, Target(policy, None))
    sub.detail = f"{what} -> policy '{policy}': {sub.reason} ({sub.detail})"
    sub.reason = reason
    sub.reasoning_effort = effort or sub.reasoning_effort
    if reason == "rule":
        sub.rule = name
    else:
        sub.route = name
    return sub


async def sticky_stage(inp: Inputs, pool: Pool, session: str | None) -> Decision | None:
    if not session:
        return None
    got = await sticky.lookup(inp.shared, pool.pr.name, session)
    if got and got["model"] in inp.rt.clients and pool.allowed(got["model"]):
        return pool.made(
            got["model"], "sticky", "session stays on the model it started with", reasoning_effort=got.get("effort")
        )
    return None


async def rules_stage(inp: Inputs, pool: Pool, effort: Effort) -> Decision | None:
    view = RuleInput(inp.text, inp.headers, getattr(inp.req, "metadata", None) or {}, inp.prompt_tokens)
    for rule in pool.pr.cfg.rules:
        if not rules.matches(rule, view):
            continue
        what = f"rule '{rule.name}' ({rules.describe(rule)})"
        if rule.policy:
            return await handover(
                inp, pool, rule.policy, "rule", what, rule.reasoning_effort or effort.value, rule.name
            )
        if rule.model:
            if pool.allowed(rule.model):
                return pool.made(
                    rule.model, "rule", what, reasoning_effort=rule.reasoning_effort or effort.value, rule=rule.name
                )
            continue
        if effort.value is None:  # effort-only rule: keep evaluating
            effort.value, effort.why = rule.reasoning_effort, what
    return None


async def semantic_stage(inp: Inputs, pool: Pool, effort: Effort) -> Decision | None:
    if pool.pr.semantic is None:
        return None
    pool.emb = await inp.rt.embed(inp.text)
    m = pool.pr.semantic.match(pool.emb)
    if m is None:
        return None
    r = m.route
    what = f"route '{r.name}' (similarity {m.score:.3f} >= {r.threshold:g})"
    if r.policy:
        return await handover(inp, pool, r.policy, "semantic", what, r.reasoning_effort or effort.value, r.name)
    if r.model and pool.allowed(r.model):
        return pool.made(
            r.model,
            "semantic",
            what,
            reasoning_effort=r.reasoning_effort or effort.value,
            embedding=pool.emb,
            route=r.name,
        )
    if not r.model and effort.value is None:
        effort.value, effort.why = r.reasoning_effort, what
    return None


async def router_scores(inp: Inputs, pool: Pool) -> tuple[dict[str, float], float | None, str, str]:
    """The learned router's quality per candidate, its strong-win probability, its kind, and the
    encoder tier whose embedding decided (the policy's ``encoder``: ``gateway.policy.tiers``)."""
    pr = pool.pr
    if pr.router is None:
        return {}, None, "none", ""
    scored = await tiers.score(inp.rt, pr, inp.text, pool.emb, pool.cands, pool.live, pool.costs, pool.objective)
    pool.emb = scored.embedding
    return scored.scores, scored.strong_win, pr.router.kind, scored.tier


async def router_stage(inp: Inputs, pool: Pool) -> Decision:
    """The learned router (or the policy order without one); always decides."""
    pr = pool.pr
    pool.costs = {c: inp.rt.expected_cost(c, pool.prompt_tokens) for c in pool.cands}
    scores, strong_win, router_name, tier = await router_scores(inp, pool)
    reason, detail = "static", "candidates in policy order"
    ordered = pool.live
    live_scored = {c: scores[c] for c in pool.live if c in scores}
    if live_scored:
        ch = choose(
            live_scored,
            pool.costs,
            pool.objective,
            strong=pr.strong if pr.strong in live_scored else None,
            weak=pr.weak if pr.weak in live_scored else None,
            strong_win=strong_win,
        )
        ordered = list(ch.ranking) + [c for c in pool.live if c not in ch.ranking]
        reason, detail = "router", ch.reason
    if not ordered:
        if not pool.fallbacks:  # a 400 when none could ever serve it as written (gateway.policy.feasible)
            never = feasible.refusal(
                inp.rt, pr.name, pool.cands + list(pr.cfg.fallbacks), pool.needs, pool.prompt_tokens, pool.max_out
            )
            raise never or APIError(
                503,
                f"No candidate of policy '{pr.name}' can serve this request: {pool.why_skipped()}",
                code="no_candidate_available",
            )
        reason, detail = "fallback", "no candidate usable: " + pool.why_skipped()
    d = pool.made(
        (ordered + pool.fallbacks)[0],
        reason,
        detail,
        router=router_name,
        scores=scores,
        strong_win=strong_win,
        embedding=pool.emb,
        encoder_tier=tier,
    )
    d.ranking = ordered + [c for c in pool.fallbacks if c not in ordered]
    return d


async def online_stage(inp: Inputs, pool: Pool, d: Decision) -> Decision | None:
    """The opt-in bandit (``online:``) re-ranks the live candidates the router ordered."""
    live = [c for c in d.ranking if c in pool.live]
    if pool.pr.cfg.online is None or not live or inp.learner is None:
        return None
    ordered, reason, detail = await inp.learner.rank(
        inp.rt, pool.pr, live, d.scores, pool.costs, pool.emb, d.reason, d.detail
    )
    d.model, d.reason, d.detail = ordered[0], reason, detail
    d.ranking = ordered + [c for c in pool.fallbacks if c not in ordered]
    return d


def apply_reasoning_rules(pool: Pool, d: Decision) -> None:
    """The policy's ``reasoning`` rules on the router's scores: an effort, maybe a reasoning model."""
    if not d.scores or not pool.pr.cfg.reasoning:
        return
    best = max((d.scores[c] for c in pool.live if c in d.scores), default=None)
    hit = reasoning.pick(pool.pr.cfg.reasoning, best, d.strong_win)
    if hit is None:
        return
    rule, why = hit
    d.reasoning_effort = rule.effort
    d.detail += f"; reasoning_effort {rule.effort} ({why})"
    if rule.model and rule.model != d.model and pool.allowed(rule.model):
        d.model = rule.model
        d.ranking = [rule.model] + [c for c in d.ranking if c != rule.model]
        d.detail += f", reasoning model {rule.model}"


def settle_effort(rt: Runtime, req: Any, d: Decision) -> None:
    """Keep a reasoning effort only where it will be sent: the client did not set one, the model can reason."""
    if not d.reasoning_effort:
        return
    if getattr(req, "reasoning_effort", None):
        d.detail += f"; client's reasoning_effort kept (policy wanted {d.reasoning_effort})"
        d.reasoning_effort = None
    elif not reasoning.supports(rt.clients[d.model]):
        d.detail += f"; reasoning_effort {d.reasoning_effort} not sent: {d.model} lacks the 'reasoning' capability"
        d.reasoning_effort = None
