"""The request path shared by chat and text completions: decide, forward, relay, record."""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import aclosing
from typing import Any

import numpy as np
import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from gateway import cache as response_cache
from gateway import cascade, metrics
from gateway.api.body import read_json, validate
from gateway.errors import APIError
from gateway.limits import guard
from gateway.limits.deadline import ClosingStreamingResponse
from gateway.outcomes.record import Outcome
from gateway.outcomes.rejected import record_rejection
from gateway.policy import reasoning
from gateway.policy.engine import Decision, decide, resolve_model, usage_cost
from gateway.protocol import ChatCompletionRequest, CompletionRequest
from gateway.runtime import Runtime
from gateway.upstream.client import UpstreamClient
from gateway.upstream.forward import Opened, open_stream
from gateway.upstream.relay import StreamResult, relay

log = logging.getLogger("shunter")

PATHS = {"chat": "/chat/completions", "completions": "/completions"}


def prompt_text(req: ChatCompletionRequest | CompletionRequest, mode: str) -> str:
    if isinstance(req, CompletionRequest):
        return req.prompt_text()
    from routers.encoder import select_text

    return select_text([m.model_dump(exclude_none=True) for m in req.messages], mode)


def decision_headers(request_id: str, d: Decision, served: str) -> dict[str, str]:
    h = {
        "x-shunter-request-id": request_id,
        "x-shunter-model": served,
        "x-shunter-policy": d.policy or "",
        "x-shunter-router": d.router,
        "x-shunter-reason": d.reason if served == d.model else "fallback",
    }
    if d.scores:
        h["x-shunter-scores"] = ",".join(f"{m}={s:.3f}" for m, s in d.scores.items())
    if d.strong_win is not None:
        h["x-shunter-strong-win"] = f"{d.strong_win:.3f}"
    if d.reasoning_effort and served == d.model:
        h["x-shunter-reasoning-effort"] = d.reasoning_effort
    return h


def upstream_body(data: dict, client: UpstreamClient, stream: bool) -> dict:
    body = {k: v for k, v in data.items() if k != "shunter"}
    body["model"] = client.model_id
    if stream:
        opts = dict(body.get("stream_options") or {})
        opts["include_usage"] = True
        body["stream_options"] = opts
    return body


def reference_model(rt: Runtime, d: Decision) -> str | None:
    if not d.policy:
        return None
    pol = rt.policies[d.policy].cfg
    if pol.reference_model:
        return pol.reference_model
    priced = [c for c in pol.candidates if rt.clients[c].cfg.output_price is not None]
    return (
        max(priced, key=lambda c: (rt.clients[c].cfg.output_price or 0, rt.clients[c].cfg.input_price or 0))
        if priced
        else None
    )


async def handle(request: Request, kind: str) -> Response:
    started = time.perf_counter()
    arrived = time.time()
    app = request.app
    rt: Runtime = app.state.runtime  # the runtime in force when the request arrived
    request_id = "req_" + uuid.uuid4().hex
    data = await read_json(request, rt.cfg.server.max_body_bytes)
    req: Any = validate(ChatCompletionRequest if kind == "chat" else CompletionRequest, data)
    if kind == "chat" and len(req.messages) > rt.cfg.server.max_messages:
        raise APIError(
            400,
            f"Too many messages: {len(req.messages)} (limit {rt.cfg.server.max_messages}).",
            code="too_many_messages",
            param="messages",
        )
    headers = {
        k.lower(): v for k, v in request.headers.items() if k.lower() not in ("authorization", "cookie")
    }  # rules may match any header
    try:
        target = resolve_model(
            rt, req.model, headers.get("x-shunter-policy") or (req.shunter.policy if req.shunter else None)
        )
        await guard.admit(request, rt, target, req, request_id)  # key's policies/models, prompt size, tpm, budget
        mode = rt.policies[target.policy].cfg.embed if target.policy else "last_user"
        text = prompt_text(req, mode)
        decision = await decide(rt, target, req, text, headers, getattr(app.state, "shared", None))
    except APIError as exc:  # rejected before any upstream call: still one outcome record
        record_rejection(app, request, request_id, arrived, started, kind, exc)
        raise
    stream = bool(req.stream)
    clients = [rt.clients[m] for m in decision.ranking]

    def on_fallback(frm: str, to: str) -> None:
        metrics.FALLBACKS.labels(decision.policy or "", frm, to).inc()

    outcome = Outcome(
        request_id=request_id,
        ts=arrived,
        endpoint=kind,
        policy=decision.policy,
        key_id=getattr(request.state, "key_id", None),
        candidates=list(decision.scores) or decision.ranking,
        scores=decision.scores,
        strong_win=decision.strong_win,
        chosen=decision.model,
        reason=decision.reason,
        detail=decision.detail,
        router=decision.router,
        stream=stream,
        embedding=decision.embedding.astype(np.float16).tobytes() if decision.embedding is not None else None,
        prompt=text if (decision.policy and rt.policies[decision.policy].cfg.store_prompts) else None,
    )
    cached = await response_cache.lookup(app, rt, decision, data, text)
    if cached.hit:  # opt-in per policy (gateway.cache)
        outcome.served, outcome.reason, outcome.latency_s = cached.model, "cache", time.perf_counter() - started
        _finish(app, rt, outcome, decision, None)
        usage_opt = getattr(req, "stream_options", None)
        return cached.response(
            decision_headers(request_id, decision, cached.model), stream, bool(usage_opt and usage_opt.include_usage)
        )
    pr = rt.policies[decision.policy] if decision.policy else None
    if pr is not None and pr.checker is not None:  # FrugalGPT runtime cascade
        return await _cascade(app, rt, pr, decision, outcome, data, text, kind, req, started)
    try:
        opened = await open_stream(
            clients,
            PATHS[kind],
            lambda c: reasoning.apply(upstream_body(data, c, stream), c, decision.reasoning_effort),
            stream,
            on_fallback,
        )
    except APIError as exc:
        _failed(app, rt, outcome, decision, exc, started)
        raise
    served = opened.client.name
    outcome.served = served
    outcome.attempts = [a.__dict__ for a in opened.attempts]
    if served != decision.model:
        outcome.reason = "fallback"
    hdrs = decision_headers(request_id, decision, served)
    hdrs.update(cached.headers())

    if not stream:
        plain = await _plain(app, rt, opened, outcome, decision, hdrs, started)
        await cached.store(plain)
        return plain
    wants_usage = bool(req.stream_options and req.stream_options.include_usage)
    result = StreamResult()
    total = opened.client.cfg.timeouts.total

    def estimate(completion: str) -> dict:
        p, c = decision.prompt_tokens, rt.count_tokens(completion) if completion else 0
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    async def body():
        try:
            async with aclosing(relay(opened, served, wants_usage, total, result, estimate_usage=estimate)) as pieces:
                async for piece in pieces:  # closed, and the upstream released, however the stream ends
                    yield piece
        finally:
            now = time.perf_counter()
            outcome.latency_s = now - started
            if result.first_byte_at:
                outcome.ttft_s = result.first_byte_at - started
                metrics.TTFT.labels(decision.policy or "", served).observe(outcome.ttft_s)
            outcome.finish_reason = result.finish_reason
            if result.error:
                outcome.error_type = result.error
                metrics.UPSTREAM_ERRORS.labels(served, "midstream").inc()
            _usage(outcome, result.usage)
            _finish(app, rt, outcome, decision, result.usage)

    return ClosingStreamingResponse(
        body(), media_type="text/event-stream", headers={**hdrs, "cache-control": "no-cache"}
    )


def _failed(app, rt: Runtime, outcome: Outcome, d: Decision, exc: APIError, started: float) -> None:
    """Every upstream attempt failed: record it, and tell the client which request and policy."""
    outcome.status, outcome.error_type = exc.status, exc.code
    outcome.latency_s = time.perf_counter() - started
    _finish(app, rt, outcome, d, None)
    exc.headers.update({"x-shunter-request-id": outcome.request_id, "x-shunter-policy": d.policy or ""})


async def _cascade(
    app, rt: Runtime, pr, d: Decision, outcome: Outcome, data: dict, text: str, kind: str, req: Any, started: float
) -> Response:
    """Answer with the cheapest model, escalate while the answer checker doubts it."""
    try:
        res = await cascade.run(rt, pr, d, PATHS[kind], data, text)
    except APIError as exc:
        _failed(app, rt, outcome, d, exc, started)
        raise
    outcome.served = res.served
    outcome.reason = "cascade"
    outcome.detail = res.header()
    outcome.escalations = res.escalations
    outcome.attempts = [s.__dict__ for s in res.stages]
    outcome.latency_s = outcome.ttft_s = time.perf_counter() - started
    choices = res.payload.get("choices") or [{}]
    outcome.finish_reason = choices[0].get("finish_reason")
    _usage(outcome, res.payload.get("usage"))
    # Every stage was paid for: the cost counts them all, the reference is the final usage.
    _finish(app, rt, outcome, d, res.payload.get("usage"), extra_usage=[(m, u) for m, u in res.usage_total()[:-1]])
    hdrs = decision_headers(outcome.request_id, d, res.served)
    hdrs["x-shunter-reason"] = "cascade"
    hdrs["x-shunter-cascade"] = res.header()
    if req.stream:
        wants_usage = bool(req.stream_options and req.stream_options.include_usage)
        chunks = cascade.as_sse(res.payload, wants_usage)

        async def body():
            for c in chunks:
                yield c

        return StreamingResponse(body(), media_type="text/event-stream", headers={**hdrs, "cache-control": "no-cache"})
    return Response(orjson.dumps(res.payload), media_type="application/json", headers=hdrs)


async def _plain(
    app, rt: Runtime, opened: Opened, outcome: Outcome, d: Decision, hdrs: dict, started: float
) -> Response:
    try:
        raw = await opened.response.aread()
    except Exception as exc:  # the upstream broke while sending its body
        await opened.aclose()
        outcome.status, outcome.error_type = 502, "body_read_failed"
        outcome.latency_s = time.perf_counter() - started
        _finish(app, rt, outcome, d, None)
        raise APIError(
            502,
            f"Upstream failed while sending its response: {type(exc).__name__}.",
            code="upstream_failed",
            headers={"x-shunter-request-id": outcome.request_id},
        ) from None
    await opened.aclose()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        outcome.status, outcome.error_type = 502, "invalid_upstream_json"
        _finish(app, rt, outcome, d, None)
        raise APIError(
            502,
            "Upstream returned a body that is not JSON.",
            code="upstream_bad_response",
            headers={"x-shunter-request-id": outcome.request_id},
        ) from None
    if isinstance(payload, dict):
        payload["model"] = opened.client.name
        choices = payload.get("choices") or []
        if choices:
            outcome.finish_reason = choices[0].get("finish_reason")
        _usage(outcome, payload.get("usage"))
    outcome.latency_s = time.perf_counter() - started
    outcome.ttft_s = outcome.latency_s
    _finish(app, rt, outcome, d, payload.get("usage") if isinstance(payload, dict) else None)
    return Response(
        orjson.dumps(payload), media_type="application/json", headers=hdrs
    )  # ORJSONResponse warns (deprecated) per call


def _usage(outcome: Outcome, usage: dict | None) -> None:
    if usage:
        outcome.prompt_tokens = usage.get("prompt_tokens")
        outcome.completion_tokens = usage.get("completion_tokens")


def _finish(
    app,
    rt: Runtime,
    outcome: Outcome,
    d: Decision,
    usage: dict | None,
    extra_usage: list[tuple[str, dict]] | None = None,
) -> None:
    """Account for a finished request: metrics and the outcome record (off the hot path).

    ``extra_usage`` lists earlier paid calls for the same request (cascade stages): their tokens
    and cost are added to the served call's.
    """
    served = outcome.served or ""
    policy = outcome.policy or ""
    for model, u in extra_usage or []:
        c = usage_cost(rt, model, u)
        outcome.extra_cost_usd = (outcome.extra_cost_usd or 0.0) + (c or 0.0)
        metrics.TOKENS.labels(model, "prompt").inc(u.get("prompt_tokens", 0) or 0)
        metrics.TOKENS.labels(model, "completion").inc(u.get("completion_tokens", 0) or 0)
        if c:
            metrics.COST.labels(policy, model).inc(c)
    if outcome.served and usage:
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
    status = "error" if outcome.error_type and outcome.status == 200 else f"{outcome.status // 100}xx"
    metrics.REQUESTS.labels(policy, served or "none", status, outcome.reason).inc()
    if outcome.latency_s is not None:
        metrics.REQUEST_DURATION.labels(policy, served or "none").observe(outcome.latency_s)
    guard.settle(app, outcome)  # charge the key's tpm and budget
    recorder = getattr(app.state, "recorder", None)
    if recorder is not None:
        recorder.submit(outcome)
