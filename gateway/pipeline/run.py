"""``handle``: run one request through parse → admit → decide → execute → finish."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import APIError
from gateway.ingress.base import Ingress
from gateway.pipeline.admit import admit, parse
from gateway.pipeline.context import RequestContext
from gateway.pipeline.decide import Inputs, decide, policy_text
from gateway.pipeline.execute import execute, record_decision
from gateway.pipeline.finish import failed
from gateway.services import Services

log = logging.getLogger("shunter")


async def handle(services: Services, ingress: Ingress, request: Request) -> Response:
    """The response for one request; every exit finishes the request exactly once."""
    ctx = RequestContext.begin(services, ingress, request)
    try:
        await parse(ctx)
        await admit(ctx)
        await decide_stage(ctx)
        return await execute(ctx)
    except APIError as exc:
        if not ctx.finished:
            failed(ctx, exc)
        return ingress.error(exc)
    except Exception:
        log.exception("unhandled error in request %s", ctx.request_id)
        err = APIError(500, "Internal gateway error.", code="internal_error")
        if not ctx.finished:
            failed(ctx, err)
        return ingress.error(err)
    except BaseException:  # cancelled: the client went away, or the request deadline passed
        if not ctx.finished:
            ctx.outcome.error_type = ctx.outcome.error_type or "cancelled"
            failed(ctx, APIError(499, "The request was cancelled before it was answered.", code="cancelled"))
        raise


async def decide_stage(ctx: RequestContext) -> None:
    """Decide the model; the stage's CPU time on this thread goes into the record (``route_cpu_s``).

    ``time.thread_time`` counts this thread only: the encoder's own thread is not in it, and other
    requests' work that runs on the event loop while this stage awaits is (both small next to a call).
    """
    cpu0 = time.thread_time()
    assert ctx.chat is not None and ctx.target is not None
    target, req = ctx.target, ctx.chat.req
    if target.policy:
        ctx.text = policy_text(req, ctx.rt.policies[target.policy].cfg.embed)
    svc = ctx.services
    inp = Inputs(ctx.rt, req, ctx.text, ctx.headers, ctx.prompt_tokens, svc.shared, svc.learner)
    ctx.decision = await decide(inp, target)
    record_decision(ctx)
    ctx.outcome.route_cpu_s = time.thread_time() - cpu0
