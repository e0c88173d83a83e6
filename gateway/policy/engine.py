"""The routing decision: model name → policy → filters → sticky/rules/semantic/router → ranking.

Order of evaluation for a policy request:
1. per-request overrides (``router-<policy>-<threshold>``, ``x-shunter-*`` headers,
   ``extra_body`` ``shunter: {...}``), range-checked against the policy;
2. hard filters: availability (API key set, circuit closed), required capabilities (tools,
   vision, JSON mode), context window (the whole prompt plus ``max_tokens``);
3. session stickiness: a known session stays on its model (reason ``sticky``);
4. rules, in order (reason ``rule``), then semantic routes (reason ``semantic``); a rule or route
   sends to a model, or hands the request to another policy;
5. the learned router: embed the prompt once, score the candidates, ``routers.decision.choose``;
6. reasoning rules on the router's scores set ``reasoning_effort`` (or a reasoning model);
7. the rest of the candidates (best first) then the policy's ``fallbacks`` form the try order.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gateway import metrics
from gateway.errors import APIError
from gateway.policy import feasible, reasoning, rules, sticky
from gateway.policy.rules import RuleInput
from gateway.protocol import ChatCompletionRequest, CompletionRequest, ShunterOptions
from routers.decision import Objective as DecisionObjective
from routers.decision import choose, expected_cost

if TYPE_CHECKING:
    from gateway.runtime import PolicyRuntime, Runtime

_THRESHOLD_SUFFIX = re.compile(r"^(?P<name>.+)-(?P<thr>\d*\.\d+|\d+(?:\.\d*)?)$")


@dataclass
class Decision:
    policy: str | None
    model: str
    ranking: list[str]
    reason: str
    detail: str = ""
    router: str = "none"
    scores: dict[str, float] = field(default_factory=dict)
    strong_win: float | None = None
    embedding: np.ndarray | None = None
    prompt_tokens: int = 0
    objective: str = ""
    objective_value: float | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    reasoning_effort: str | None = None


@dataclass
class Target:
    """What the ``model`` field (and overrides) asked for."""

    policy: str | None
    passthrough: str | None
    threshold: float | None = None


def resolve_model(rt: Runtime, model: str, header_policy: str | None = None) -> Target:
    """``router-<policy>``, ``router-<policy>-<threshold>``, an alias, or a concrete upstream model."""
    if header_policy:
        if header_policy not in rt.policies:
            raise APIError(
                404,
                f"Unknown policy '{header_policy}' in x-shunter-policy.",
                code="policy_not_found",
                param="x-shunter-policy",
            )
        return Target(header_policy, None)
    if model in rt.aliases:
        return Target(rt.aliases[model], None)
    if model.startswith("router-"):
        rest = model[len("router-") :]
        if rest in rt.policies:
            return Target(rest, None)
        m = _THRESHOLD_SUFFIX.match(rest)
        if m and m.group("name") in rt.policies:
            return Target(m.group("name"), None, float(m.group("thr")))
    if model in ("router", "auto") and rt.default_policy:
        return Target(rt.default_policy, None)
    if model in rt.clients and rt.cfg.server.allow_passthrough:
        return Target(None, model)
    known = sorted(
        [f"router-{p}" for p in rt.policies]
        + list(rt.aliases)
        + (list(rt.clients) if rt.cfg.server.allow_passthrough else [])
    )
    raise APIError(
        404,
        f"The model '{model}' does not exist. Known models: {', '.join(known)}.",
        code="model_not_found",
        param="model",
    )


def _needs(req: ChatCompletionRequest | CompletionRequest) -> set[str]:
    needs: set[str] = set()
    if isinstance(req, ChatCompletionRequest):
        if req.wants_tools():
            needs.add("tools")
        if req.has_image():
            needs.add("vision")
        if req.wants_json():
            needs.add("json_mode")
    return needs


def apply_overrides(
    pr: PolicyRuntime, target: Target, opts: ShunterOptions | None, headers: dict[str, str]
) -> tuple[DecisionObjective, list[str]]:
    """The objective and candidate list in force for this request, after per-request overrides."""
    obj = pr.objective
    cands = list(pr.cfg.candidates)
    threshold = target.threshold
    cost_weight = None
    cap = None
    sub = None
    if "x-shunter-threshold" in headers:
        threshold = _float(headers["x-shunter-threshold"], "x-shunter-threshold")
    if "x-shunter-cost-weight" in headers:
        cost_weight = _float(headers["x-shunter-cost-weight"], "x-shunter-cost-weight")
    if "x-shunter-candidates" in headers:
        sub = [c.strip() for c in headers["x-shunter-candidates"].split(",") if c.strip()]
    if opts:
        threshold = opts.threshold if opts.threshold is not None else threshold
        cost_weight = opts.cost_weight if opts.cost_weight is not None else cost_weight
        cap = opts.max_cost_per_request
        sub = opts.candidates if opts.candidates is not None else sub
    if any(v is not None for v in (threshold, cost_weight, cap, sub)) and not pr.cfg.allow_overrides:
        raise APIError(400, f"Policy '{pr.name}' does not allow per-request overrides.", code="overrides_not_allowed")
    if threshold is not None:
        lo, hi = pr.cfg.threshold_range
        if not lo <= threshold <= hi:
            raise APIError(
                400,
                f"Threshold {threshold} is outside policy '{pr.name}' allowed range [{lo}, {hi}].",
                code="override_out_of_range",
                param="threshold",
            )
        obj = DecisionObjective("threshold", threshold)
    if cost_weight is not None:
        lo, hi = pr.cfg.cost_weight_range
        if not lo <= cost_weight <= hi:
            raise APIError(
                400,
                f"Cost weight {cost_weight} is outside policy '{pr.name}' allowed range [{lo}, {hi}].",
                code="override_out_of_range",
                param="cost_weight",
            )
        obj = DecisionObjective("cost_weight", cost_weight)
    if cap is not None:
        if cap <= 0:
            raise APIError(
                400,
                "max_cost_per_request must be positive.",
                code="override_out_of_range",
                param="max_cost_per_request",
            )
        obj = DecisionObjective("max_cost_per_request", cap)
    if sub is not None:
        bad = [c for c in sub if c not in cands]
        if bad or not sub:
            raise APIError(
                400,
                f"Candidates override must be a non-empty subset of policy '{pr.name}' candidates ({', '.join(cands)}); not allowed: {', '.join(bad) or '(empty)'}.",
                code="override_out_of_range",
                param="candidates",
            )
        cands = [c for c in cands if c in sub]
    return obj, cands


def _float(v: str, name: str) -> float:
    try:
        return float(v)
    except ValueError:
        raise APIError(400, f"Header {name} must be a number, got '{v}'.", code="invalid_value", param=name) from None


def full_prompt_text(req: ChatCompletionRequest | CompletionRequest) -> str:
    """Every message's text: what the context-window filter and token rules measure."""
    if isinstance(req, CompletionRequest):
        return req.prompt_text()
    return "\n".join(m.text() for m in req.messages)


def _policy_text(req: ChatCompletionRequest | CompletionRequest, mode: str) -> str:
    if isinstance(req, CompletionRequest):
        return req.prompt_text()
    from routers.encoder import select_text

    return select_text([m.model_dump(exclude_none=True) for m in req.messages], mode)


def _rank(first: str, live: list[str], fallbacks: list[str]) -> list[str]:
    return [first] + [c for c in live if c != first] + [c for c in fallbacks if c != first]


_MAX_DEPTH = 4


async def decide(
    rt: Runtime,
    target: Target,
    req: ChatCompletionRequest | CompletionRequest,
    text: str,
    headers: dict[str, str],
    shared: Any = None,
    *,
    _depth: int = 0,
) -> Decision:
    """Decide the model (and try order) for one request; see the module docstring for the order."""
    t0 = time.perf_counter()
    prompt_tokens = rt.count_tokens(full_prompt_text(req) or text)
    if target.passthrough:
        return Decision(
            None,
            target.passthrough,
            [target.passthrough],
            "passthrough",
            prompt_tokens=prompt_tokens,
            seconds=time.perf_counter() - t0,
        )
    pr = rt.policies[target.policy]  # type: ignore[index]
    if _depth == 0:
        objective, cands = apply_overrides(pr, target, req.shunter, headers)
    else:  # handed over by a rule or route: the target policy's own settings
        objective, cands = pr.objective, list(pr.cfg.candidates)
    restricted = cands != list(pr.cfg.candidates)
    needs = _needs(req)
    max_out = getattr(req, "max_tokens", None) or getattr(req, "max_completion_tokens", None) or 0
    skipped: dict[str, str] = {}

    def usable(name: str) -> bool:
        client = rt.clients[name]
        ok, why = client.available()
        if not ok:
            skipped[name] = why
            return False
        missing = needs - set(client.cfg.capabilities)
        if missing:
            skipped[name] = f"lacks {', '.join(sorted(missing))}"
            return False
        if prompt_tokens + max_out > client.cfg.context_window:
            skipped[name] = f"prompt of ~{prompt_tokens} tokens exceeds context window {client.cfg.context_window}"
            return False
        return True

    live = [c for c in cands if usable(c)]
    fallbacks = [c for c in pr.cfg.fallbacks if c not in cands and usable(c)]

    def allowed(model: str) -> bool:
        if restricted and model not in cands:
            skipped.setdefault(model, "excluded by the candidates override")
            return False
        return usable(model)

    def made(model: str, reason: str, detail: str, **kw: Any) -> Decision:
        return Decision(
            pr.name,
            model,
            _rank(model, live, fallbacks),
            reason,
            detail,
            prompt_tokens=prompt_tokens,
            objective=objective.kind,
            objective_value=objective.value,
            skipped=skipped,
            **kw,
        )

    async def handover(policy: str, reason: str, what: str, effort: str | None) -> Decision:
        if _depth >= _MAX_DEPTH:
            raise APIError(500, f"Policy hand-over deeper than {_MAX_DEPTH} levels at '{pr.name}'.", code="policy_loop")
        sub_text = _policy_text(req, rt.policies[policy].cfg.embed)
        sub = await decide(rt, Target(policy, None), req, sub_text, headers, shared, _depth=_depth + 1)
        sub.detail = f"{what} -> policy '{policy}': {sub.reason} ({sub.detail})"
        sub.reason = reason
        sub.reasoning_effort = effort or sub.reasoning_effort
        return sub

    session = sticky.session_key(pr.cfg.sticky, req, headers) if _depth == 0 and shared is not None else None
    d: Decision | None = None
    if session:
        got = await sticky.lookup(shared, pr.name, session)
        if got and got["model"] in rt.clients and allowed(got["model"]):
            d = made(
                got["model"], "sticky", "session stays on the model it started with", reasoning_effort=got.get("effort")
            )
    effort: str | None = None
    effort_why = ""
    emb: np.ndarray | None = None
    if d is None:
        view = RuleInput(text, headers, getattr(req, "metadata", None) or {}, prompt_tokens)
        for rule in pr.cfg.rules:
            if not rules.matches(rule, view):
                continue
            what = f"rule '{rule.name}' ({rules.describe(rule)})"
            if rule.policy:
                d = await handover(rule.policy, "rule", what, rule.reasoning_effort or effort)
                break
            if rule.model:
                if allowed(rule.model):
                    d = made(rule.model, "rule", what, reasoning_effort=rule.reasoning_effort or effort)
                    break
                continue
            if effort is None:  # effort-only rule: keep evaluating
                effort, effort_why = rule.reasoning_effort, what
    if d is None and pr.semantic is not None:
        emb = await rt.embed(text)
        m = pr.semantic.match(emb)
        if m is not None:
            r = m.route
            what = f"route '{r.name}' (similarity {m.score:.3f} >= {r.threshold:g})"
            if r.policy:
                d = await handover(r.policy, "semantic", what, r.reasoning_effort or effort)
            elif r.model and allowed(r.model):
                d = made(r.model, "semantic", what, reasoning_effort=r.reasoning_effort or effort, embedding=emb)
            elif not r.model and effort is None:
                effort, effort_why = r.reasoning_effort, what
    if d is None:
        costs = {c: rt.expected_cost(c, prompt_tokens) for c in cands}
        try:
            d = await _route(rt, pr, text, objective, cands, costs, live, fallbacks, skipped, emb, made, allowed)
        except APIError as exc:  # no usable candidate: a 400 if none could ever serve it (gateway.policy.feasible)
            bad = exc.code == "no_candidate_available" and feasible.refusal(
                rt, pr.name, cands + list(pr.cfg.fallbacks), needs, prompt_tokens, max_out
            )
            raise (bad or exc) from None
        if effort and not d.reasoning_effort:
            d.reasoning_effort = effort
            d.detail += f"; reasoning_effort {effort} by {effort_why}"
    if _depth == 0:
        _settle_effort(rt, req, d)
        if session:
            await sticky.remember(shared, pr.name, session, d.model, d.reasoning_effort, pr.cfg.sticky.ttl)  # type: ignore[union-attr]
    elapsed = time.perf_counter() - t0
    d.seconds = elapsed
    d.prompt_tokens = prompt_tokens
    if _depth == 0:
        metrics.ROUTING_DURATION.labels(pr.name).observe(elapsed)
    return d


async def _route(rt, pr, text, objective, cands, costs, live, fallbacks, skipped, emb, made, allowed) -> Decision:
    """The learned router (or the policy order without one), then the reasoning rules."""
    scores: dict[str, float] = {}
    strong_win = None
    reason, detail, router_name = "static", "candidates in policy order", "none"
    if pr.router is not None:
        if emb is None:
            emb = await rt.embed(text)
        out = pr.router.score(emb[None, :])
        inner = {m: i for i, m in enumerate(out.models)}
        for c in cands:
            name = pr.model_map.get(c, c)
            if name in inner:
                scores[c] = float(out.quality[0, inner[name]])
        own_pair = (out.strong, out.weak) == (pr.model_map.get(pr.strong), pr.model_map.get(pr.weak))
        if out.strong_win is not None and own_pair:
            strong_win = float(out.strong_win[0])
        elif pr.strong in scores and pr.weak in scores:  # any other pair: same mapping as its calibration
            strong_win = min(1.0, max(0.0, 0.5 + 0.5 * (scores[pr.strong] - scores[pr.weak])))
        router_name = pr.router.kind
    ordered = live
    if live and scores:
        live_scored = {c: scores[c] for c in live if c in scores}
        if live_scored:
            ch = choose(
                live_scored,
                costs,
                objective,
                strong=pr.strong if pr.strong in live_scored else None,
                weak=pr.weak if pr.weak in live_scored else None,
                strong_win=strong_win,
            )
            ordered = list(ch.ranking) + [c for c in live if c not in ch.ranking]
            reason, detail = "router", ch.reason
    if pr.cfg.online is not None and ordered:  # opt-in bandit (gateway.learning.online)
        from gateway.learning import online

        ordered, reason, detail = await online.rank(rt, pr, ordered, scores, costs, emb, reason, detail)
    if not ordered:
        if not fallbacks:
            raise APIError(
                503,
                f"No candidate of policy '{pr.name}' can serve this request: "
                + "; ".join(f"{k}: {v}" for k, v in skipped.items()),
                code="no_candidate_available",
            )
        reason, detail = "fallback", "no candidate usable: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
    d = made(
        (ordered + fallbacks)[0],
        reason,
        detail,
        router=router_name,
        scores=scores,
        strong_win=strong_win,
        embedding=emb,
    )
    d.ranking = ordered + [c for c in fallbacks if c not in ordered]
    if scores and pr.cfg.reasoning:
        best = max((scores[c] for c in live if c in scores), default=None)
        hit = reasoning.pick(pr.cfg.reasoning, best, strong_win)
        if hit is not None:
            rule, why = hit
            d.reasoning_effort = rule.effort
            d.detail += f"; reasoning_effort {rule.effort} ({why})"
            if rule.model and rule.model != d.model:
                if allowed(rule.model):
                    d.model = rule.model
                    d.ranking = [rule.model] + [c for c in d.ranking if c != rule.model]
                    d.detail += f", reasoning model {rule.model}"
    return d


def _settle_effort(rt: Runtime, req: Any, d: Decision) -> None:
    """Keep a reasoning effort only where it will be sent: the client did not set one, the model can reason."""
    if not d.reasoning_effort:
        return
    if getattr(req, "reasoning_effort", None):
        d.detail += f"; client's reasoning_effort kept (policy wanted {d.reasoning_effort})"
        d.reasoning_effort = None
    elif not reasoning.supports(rt.clients[d.model]):
        d.detail += f"; reasoning_effort {d.reasoning_effort} not sent: {d.model} lacks the 'reasoning' capability"
        d.reasoning_effort = None


def usage_cost(rt: Runtime, model: str, usage: dict[str, Any] | None) -> float | None:
    if not usage:
        return None
    cfg = rt.clients[model].cfg
    if cfg.input_price is None or cfg.output_price is None:
        return None
    return (
        usage.get("prompt_tokens", 0) * cfg.input_price + usage.get("completion_tokens", 0) * cfg.output_price
    ) / 1e6


__all__ = ["Decision", "Target", "apply_overrides", "decide", "expected_cost", "resolve_model", "usage_cost"]
