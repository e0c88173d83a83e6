"""Parse and admit: the wire format into the internal request, the model name into a target, the key's limits.

Authentication and the key's requests-per-minute limit run earlier, in
``gateway.limits.guard.AuthMiddleware``; this stage checks what needs the parsed request: the
policies and models the key may use, the policy's prompt size, tokens per minute and the budget.
"""

from __future__ import annotations

from gateway.ingress.body import read_json
from gateway.limits import guard
from gateway.pipeline.context import RequestContext
from gateway.policy.engine import Target, full_prompt_text, resolve_model


async def parse(ctx: RequestContext) -> None:
    """Read the body and let the ingress turn it into the internal request (``APIError`` 4xx if wrong)."""
    data = await read_json(ctx.request, ctx.rt.cfg.server.max_body_bytes)
    ctx.chat = ctx.ingress.parse(data, ctx.rt.cfg.server)
    await ctx.ingress.prepare(ctx)


async def admit(ctx: RequestContext) -> None:
    """Resolve the model name (or ``x-shunter-policy``) and check it against the key and the policy."""
    assert ctx.chat is not None
    req = ctx.chat.req
    if ctx.ingress.routed:
        ctx.target = resolve_model(
            ctx.rt, req.model, ctx.headers.get("x-shunter-policy") or (req.shunter.policy if req.shunter else None)
        )
    else:  # the ingress checked that the model names one of its upstreams
        ctx.target = Target(None, req.model)
    ctx.outcome.policy = ctx.target.policy
    ctx.prompt_tokens = ctx.rt.count_tokens(full_prompt_text(req))  # counted once: limits and context windows
    if await guard.admit(ctx.services.guard, ctx.key, ctx.rt, ctx.target, req, ctx.prompt_tokens, ctx.request_id):
        ctx.request.scope.setdefault("state", {})["ticket_id"] = ctx.request_id  # the auth middleware forgets it
