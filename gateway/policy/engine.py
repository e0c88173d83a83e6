"""The routing decision's types, the model name → policy resolution and per-request overrides.

The stages themselves (sticky, rules, semantic, router, online) live in ``gateway.pipeline.decide``.

Order of evaluation for a policy request:
1. per-request overrides (``router-<policy>-<threshold>``, ``x-shunter-*`` headers,
   ``extra_body`` ``shunter: {...}``), range-checked against the policy;
2. hard filters: availability (API key set, circuit closed), required capabilities (tools,
   vision, JSON mode), context window (the whole prompt plus ``max_tokens``);
3. session stickiness: a known session stays on its model (reason ``sticky``);
4. rules, in order (reason ``rule``), then semantic routes (reason ``semantic``); a rule or route
   sends to a model, or hands the request to another policy;
5. the learned router: embed the prompt (the policy's encoder tier: fast, accurate, or fast then
   MiniLM when the decision is close; ``gateway.policy.tiers``), score the candidates,
   ``routers.decision.choose``;
6. reasoning rules on the router's scores set ``reasoning_effort`` (or a reasoning model);
7. the rest of the candidates (best first) then the policy's ``fallbacks`` form the try order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gateway.errors import APIError
from gateway.protocol import ChatCompletionRequest, CompletionRequest, ShunterOptions
from routers.decision import Objective as DecisionObjective
from routers.decision import expected_cost

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
    rule: str | None = None  # the rule that decided (header x-shunter-rule)
    route: str | None = None  # the semantic route that decided (header x-shunter-route)
    encoder_tier: str = ""  # fast or accurate: which encoder's embedding the router decided on


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
    if not hasattr(req, "messages"):  # text completions, embeddings
        return req.prompt_text()
    return "\n".join(m.text() for m in req.messages)


def reference_of(rt: Runtime, policy: str) -> str | None:
    """The model a policy's savings are measured against: its ``reference_model``, else its priciest candidate."""
    pol = rt.policies[policy].cfg
    if pol.reference_model:
        return pol.reference_model
    priced = [c for c in pol.candidates if rt.clients[c].cfg.output_price is not None]
    return (
        max(priced, key=lambda c: (rt.clients[c].cfg.output_price or 0, rt.clients[c].cfg.input_price or 0))
        if priced
        else None
    )


def usage_cost(rt: Runtime, model: str, usage: dict[str, Any] | None) -> float | None:
    if not usage:
        return None
    cfg = rt.clients[model].cfg
    if cfg.input_price is None or (cfg.output_price is None and usage.get("completion_tokens")):
        return None  # an unpriced model (an embedding model needs no output price)
    return (
        (usage.get("prompt_tokens") or 0) * cfg.input_price
        + (usage.get("completion_tokens") or 0) * (cfg.output_price or 0.0)
    ) / 1e6


__all__ = ["Decision", "Target", "apply_overrides", "expected_cost", "full_prompt_text", "resolve_model", "usage_cost"]
