"""Finish: account for a request exactly once, whatever way it ends.

Every exit of the pipeline calls :func:`finish`: an answer (plain, streamed, cached, cascaded), a
refusal before any upstream call, an upstream failure. It redacts secrets from the record,
prices the usage (every paid call of a cascade included), updates the metrics, charges the key's
tokens-per-minute and budget, and hands the outcome record to the recorder. A second call for
the same request is a bug: it is logged and ignored.

**Post-answer hooks** go last: ``Services.finish_hooks`` are called with the services, the
finished record and the request context (the place for shadow sampling and other work that
reads a finished request: ``ctx.chat.body`` is the client's request, ``ctx.answer`` the answer).
A hook must not block: start a task for anything slow. A failing hook is logged, never raised.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway import metrics
from gateway.errors import APIError
from gateway.outcomes.record import Outcome
from gateway.pipeline.context import RequestContext
from gateway.policy.engine import Decision, reference_of, usage_cost
from gateway.runtime import Runtime
from gateway.secrets import redact

log = logging.getLogger("shunter")


def reference_model(rt: Runtime, d: Decision | None) -> str | None:
    """The model a policy's savings are measured against: its ``reference_model``, else its priciest candidate."""
    if d is None or not d.policy:
        return None
    return reference_of(rt, d.policy)


def set_usage(outcome: Outcome, usage: dict[str, Any] | None) -> None:
    if usage:
        outcome.prompt_tokens = usage.get("prompt_tokens")
        outcome.completion_tokens = usage.get("completion_tokens")


def failed(ctx: RequestContext, exc: APIError) -> None:
    """The request ends with an error: record it, finish, and name the request in the error's headers."""
    o = ctx.outcome
    o.status, o.error_type = exc.status, exc.code or exc.type
    if ctx.decision is None:  # refused before any upstream call
        o.reason, o.detail = "rejected", exc.message[:500]
    exc.headers.setdefault("x-shunter-request-id", ctx.request_id)
    if ctx.decision is not None and ctx.decision.policy:
        exc.headers.setdefault("x-shunter-policy", ctx.decision.policy)
    if o.latency_s is None:
        o.latency_s = ctx.elapsed()
    finish(ctx)


def finish(ctx: RequestContext) -> None:
    """Account for the finished request (once): cost, metrics, limits, the outcome record, hooks."""
    if ctx.finished:
        log.error("request %s finished twice; the second time is ignored", ctx.request_id)
        return
    ctx.finished = True
    outcome = ctx.outcome
    if outcome.error_type:
        outcome.error_type = redact(outcome.error_type)[:200]
    if outcome.detail and outcome.status != 200:
        outcome.detail = redact(outcome.detail)
    _charge(ctx.rt, outcome, ctx.decision, ctx.usage, ctx.extra_usage)
    _net_savings(outcome, ctx.services.settings.routing_cpu_usd_per_hour)
    served = outcome.served or "none"
    policy = outcome.policy or ""
    status = "error" if outcome.error_type and outcome.status == 200 else f"{outcome.status // 100}xx"
    metrics.REQUESTS.labels(policy, served, status, outcome.reason).inc()
    if outcome.latency_s is not None and outcome.reason != "rejected":
        metrics.REQUEST_DURATION.labels(policy, served).observe(outcome.latency_s)
    svc = ctx.services
    if outcome.key_id:
        svc.guard.settle(outcome)  # charge the key's tpm and budget, off the request path
    svc.recorder.submit(outcome)
    for hook in svc.finish_hooks:  # post-answer hooks (see the module docstring)
        try:
            hook(svc, outcome, ctx)
        except Exception:
            log.exception("finish hook %r failed", hook)


def _charge(
    rt: Runtime, outcome: Outcome, d: Decision | None, usage: dict | None, extra: list[tuple[str, dict]]
) -> None:
    """Price the served call and any earlier paid calls (cascade stages); token and cost metrics."""
    served = outcome.served or ""
    policy = outcome.policy or ""
    for model, u in extra:
        c = usage_cost(rt, model, u)
        outcome.extra_cost_usd = (outcome.extra_cost_usd or 0.0) + (c or 0.0)
        metrics.TOKENS.labels(model, "prompt").inc(u.get("prompt_tokens", 0) or 0)
        metrics.TOKENS.labels(model, "completion").inc(u.get("completion_tokens", 0) or 0)
        if c:
            metrics.COST.labels(policy, model).inc(c)
    if not (outcome.served and usage):
        return
    outcome.cost_usd = usage_cost(rt, served, usage)
    if outcome.cost_usd is not None and outcome.extra_cost_usd:
        outcome.cost_usd += outcome.extra_cost_usd
    ref = reference_model(rt, d)
    if ref:
        outcome.reference_cost_usd = usage_cost(rt, ref, usage)
    metrics.TOKENS.labels(served, "prompt").inc(usage.get("prompt_tokens", 0) or 0)
    metrics.TOKENS.labels(served, "completion").inc(usage.get("completion_tokens", 0) or 0)
    if outcome.cost_usd is not None:
        metrics.COST.labels(policy, served).inc(outcome.cost_usd - (outcome.extra_cost_usd or 0.0))
    if outcome.reference_cost_usd is not None and outcome.cost_usd is not None:
        metrics.COST_SAVED.labels(policy).inc(max(0.0, outcome.reference_cost_usd - outcome.cost_usd))


def _net_savings(outcome: Outcome, usd_per_cpu_hour: float) -> None:
    """Routing CPU and this request's net saving (reference minus cost, cascade stages included, minus
    routing CPU) into the metrics; shadow and judge calls are taken off where they are made."""
    if not outcome.policy:
        return
    cpu = outcome.route_cpu_s or 0.0
    metrics.ROUTING_CPU.labels(outcome.policy).inc(cpu)
    saved = 0.0
    if outcome.reference_cost_usd is not None and outcome.cost_usd is not None:
        saved = outcome.reference_cost_usd - outcome.cost_usd
    metrics.NET_SAVINGS.labels(outcome.policy).inc(saved - cpu * usd_per_cpu_hour / 3600.0)
