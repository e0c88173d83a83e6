"""Execute: the one executor that turns a decision into an answer and owns the outcome record.

Every way of answering goes through the same pieces: ``forward.open_stream`` (retries before
the first byte, breaker, fallback; a plain body is read and checked against the OpenAI schema
there, so a reset, stalled or malformed body is a failed attempt like a 5xx), then

- **cache hit** (``gateway.cache``, opt-in per policy): the stored answer;
- **cascade** (a policy with ``cascade:``): ``pipeline.cascade`` asks the cheapest candidate
  first and escalates while the answer checker doubts it;
- **plain**: the upstream's checked JSON body;
- **stream**: ``upstream.relay`` passes the SSE events on as they arrive.

A complete answer goes to the client as JSON, or through ``pipeline.sse.answer_events`` when
it asked for a stream; every path ends in ``pipeline.finish.finish``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import numpy as np
from starlette.responses import Response, StreamingResponse

from gateway import cache as response_cache
from gateway import metrics
from gateway.pipeline import cascade
from gateway.pipeline.body import BodyFor
from gateway.pipeline.context import RequestContext
from gateway.pipeline.finish import finish, set_usage
from gateway.pipeline.sse import ClosingStreamingResponse, answer_events
from gateway.policy.engine import Decision
from gateway.runtime import Runtime
from gateway.upstream.forward import Opened, open_stream
from gateway.upstream.native import relay_native
from gateway.upstream.relay import StreamResult, relay

SSE_HEADERS = {"cache-control": "no-cache"}


def decision_headers(request_id: str, d: Decision, served: str) -> dict[str, str]:
    h = {
        "x-shunter-request-id": request_id,
        "x-shunter-model": served,
        "x-shunter-router": d.router,
        "x-shunter-reason": d.reason if served == d.model else "fallback",
    }
    if d.policy:  # a concrete model (passthrough) is decided by no policy
        h["x-shunter-policy"] = d.policy
    if d.rule:
        h["x-shunter-rule"] = d.rule
    if d.route:
        h["x-shunter-route"] = d.route
    if d.scores:
        h["x-shunter-scores"] = ",".join(f"{m}={s:.3f}" for m, s in d.scores.items())
    if d.strong_win is not None:
        h["x-shunter-strong-win"] = f"{d.strong_win:.3f}"
    if d.encoder_tier:
        h["x-shunter-encoder-tier"] = d.encoder_tier
    if d.reasoning_effort and served == d.model:
        h["x-shunter-reasoning-effort"] = d.reasoning_effort
    return h


def record_decision(ctx: RequestContext) -> None:
    """What was decided, into the outcome record (one copy with every field, not one set per field)."""
    d, chat = ctx.decision, ctx.chat
    assert d is not None and chat is not None
    fields: dict[str, Any] = {
        "policy": d.policy,
        "chosen": d.model,
        "reason": d.reason,
        "detail": d.detail,
        "router": d.router,
        "candidates": list(d.scores) or d.ranking,
        "scores": d.scores,
        "strong_win": d.strong_win,
        "stream": chat.stream,
        "encoder_tier": d.encoder_tier or None,
    }
    if d.embedding is not None:  # the tier that decided (encoder_tier): learning retrains on these
        fields["embedding"] = d.embedding.astype(np.float16).tobytes()
    if d.policy and ctx.rt.policies[d.policy].cfg.store_prompts:
        fields["prompt"] = ctx.text
    ctx.outcome = ctx.outcome.model_copy(update=fields)


async def execute(ctx: RequestContext) -> Response:
    d, chat = ctx.decision, ctx.chat
    assert d is not None and chat is not None
    cached = await response_cache.lookup(ctx.services.shared, ctx.rt, d, chat.body, ctx.text)
    if cached.hit:  # opt-in per policy (gateway.cache)
        ctx.outcome.served, ctx.outcome.reason = cached.model, "cache"
        hdrs = {**decision_headers(ctx.request_id, d, cached.model), **cached.headers(), "x-shunter-reason": "cache"}
        return complete(ctx, cached.payload or {}, hdrs, account=False)
    pr = ctx.rt.policies[d.policy] if d.policy else None
    if pr is not None and pr.checker is not None:  # FrugalGPT runtime cascade
        res = await cascade.run(ctx.rt, pr, d, chat, ctx.text)
        return complete_cascade(ctx, res)
    opened = await open_stream(
        [ctx.rt.clients[m] for m in d.ranking],
        chat.upstream_path,
        BodyFor(chat.body, chat.stream, d.reasoning_effort, chat.native),
        chat.stream,
        d.policy,
    )
    served = opened.client.name
    ctx.record(
        served=served,
        attempts=[a.__dict__ for a in opened.attempts],
        reason="fallback" if served != d.model else ctx.outcome.reason,
    )
    hdrs = decision_headers(ctx.request_id, d, served)
    hdrs.update(cached.headers())
    chat.served = served
    if chat.stream:
        return _relay(ctx, opened, hdrs)
    payload = opened.payload or {}
    if opened.native:
        return complete_native(ctx, payload, hdrs)
    payload["model"] = served
    await cached.store(payload)
    return complete(ctx, payload, hdrs)


def complete_native(ctx: RequestContext, payload: dict[str, Any], hdrs: dict[str, str]) -> Response:
    """An answer in the client's own format (a native upstream): account for it, pass it on."""
    chat = ctx.chat
    assert chat is not None
    usage, finish_reason = ctx.ingress.native_usage(payload)
    ctx.usage = usage
    latency = ctx.elapsed()
    ctx.record(
        finish_reason=finish_reason,
        prompt_tokens=usage.get("prompt_tokens") if usage else None,
        completion_tokens=usage.get("completion_tokens") if usage else None,
        latency_s=latency,
        ttft_s=latency,
    )
    finish(ctx)
    return ctx.ingress.native_answer(chat, payload, hdrs)


def complete(ctx: RequestContext, payload: dict[str, Any], hdrs: dict[str, str], account: bool = True) -> Response:
    """A complete answer: finish the request, then send it as JSON or, to a streaming client, as SSE."""
    latency = ctx.elapsed()
    if account:
        choices = payload.get("choices") or []
        if choices:
            msg = choices[0].get("message") if isinstance(choices[0], dict) else None
            ctx.answer = msg.get("content") if isinstance(msg, dict) else None
        usage = ctx.usage = payload.get("usage")
        ctx.record(
            finish_reason=choices[0].get("finish_reason") if choices else None,
            prompt_tokens=usage.get("prompt_tokens") if usage else None,
            completion_tokens=usage.get("completion_tokens") if usage else None,
            latency_s=latency,
            ttft_s=latency,
        )
    else:
        ctx.record(latency_s=latency)
    finish(ctx)
    chat = ctx.chat
    assert chat is not None
    chat.served = chat.served or ctx.outcome.served or ""
    if not chat.stream:
        return ctx.ingress.answer(chat, payload, hdrs)
    events = answer_events(payload, chat.include_usage)
    return StreamingResponse(
        ctx.ingress.stream(chat, _iterate(events)), media_type="text/event-stream", headers={**hdrs, **SSE_HEADERS}
    )


def complete_cascade(ctx: RequestContext, res: cascade.CascadeResult) -> Response:
    o, d = ctx.outcome, ctx.decision
    assert d is not None
    o.served, o.reason, o.detail = res.served, "cascade", res.header()
    o.escalations = res.escalations
    o.attempts = [s.__dict__ for s in res.stages]
    ctx.extra_usage = res.earlier_usage()  # every stage was paid for; the reference is the final usage
    hdrs = decision_headers(ctx.request_id, d, res.served)
    hdrs["x-shunter-reason"] = "cascade"
    hdrs["x-shunter-cascade"] = res.header()
    return complete(ctx, res.payload, hdrs)


async def _iterate(events: list[bytes]) -> AsyncIterator[bytes]:
    for e in events:
        yield e


def _estimate(rt: Runtime, prompt_tokens: int, completion: str) -> dict[str, int]:
    c = rt.count_tokens(completion) if completion else 0
    return {"prompt_tokens": prompt_tokens, "completion_tokens": c, "total_tokens": prompt_tokens + c}


def _relay(ctx: RequestContext, opened: Opened, hdrs: dict[str, str]) -> Response:
    chat = ctx.chat
    assert chat is not None
    if opened.native:
        reader = ctx.ingress.passthrough(chat)
        events = ctx.ingress.native_stream(chat, _stream_body(ctx, opened, reader), reader)
    else:
        events = ctx.ingress.stream(chat, _stream_body(ctx, opened))
    return ClosingStreamingResponse(events, media_type="text/event-stream", headers={**hdrs, **SSE_HEADERS})


async def _stream_body(ctx: RequestContext, opened: Opened, reader: Any = None) -> AsyncIterator[bytes]:
    chat, d = ctx.chat, ctx.decision
    assert chat is not None and d is not None
    result = StreamResult()
    served = opened.client.name
    estimate = functools.partial(_estimate, ctx.rt, d.prompt_tokens)
    total = opened.client.cfg.timeouts.total
    try:
        source = (
            relay_native(opened, reader, total, result)
            if reader is not None
            else relay(opened, served, chat.include_usage, total, result, estimate)
        )
        async with aclosing(source) as pieces:
            async for piece in pieces:  # closed, and the upstream released, however the stream ends
                yield piece
    finally:
        o = ctx.outcome
        o.latency_s = time.perf_counter() - ctx.started
        if result.first_byte_at:
            o.ttft_s = result.first_byte_at - ctx.started
            metrics.TTFT.labels(d.policy or "", served).observe(o.ttft_s)
        o.finish_reason = result.finish_reason
        if result.error:
            o.error_type = result.error
            metrics.UPSTREAM_ERRORS.labels(served, "midstream").inc()
        ctx.usage = result.usage
        set_usage(o, result.usage)
        if not result.error:
            ctx.answer = "".join(result.content) or None
        finish(ctx)
