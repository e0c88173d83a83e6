"""``POST /v1/feedback`` (joined to an outcome by request id), ``GET /admin/policies/{name}/state``
and ``GET /admin/policies/{name}/learning`` (the last retrain's shadow A/B).

Outcome records are written asynchronously, so feedback may arrive before its record reaches the
store. The handler waits for a record that is still queued (``Recorder.wait_written``, up to
5 s), then looks it up; a streamed response's record is submitted just after its last byte, so
an id found nowhere is looked up again for up to ``GRACE_S`` before the 404.

Feedback is bound to the key that made the request: another key gets the same 404 as for an
unknown id (so ids cannot be probed); the admin key may give feedback on any request. While the
outcome store (Redis) is unreachable the answer is 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import re
import time

from fastapi import APIRouter, Depends, Request

from gateway import metrics, services
from gateway.api.admin import require_admin
from gateway.errors import APIError
from gateway.ingress.body import read_json, validate
from gateway.outcomes.record import Feedback
from gateway.protocol import FeedbackRequest
from gateway.responses import JSONResponse

router = APIRouter()
admin_router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])

GRACE_S = 1.0
_KNOWN_SOURCES = re.compile(r"^(user|judge|eval|replay|system|api)$")


def feedback_score(req: FeedbackRequest) -> float:
    if req.score is not None and req.thumbs is not None:
        raise APIError(400, "Give either 'score' or 'thumbs', not both.", code="invalid_value", param="score")
    if req.score is not None:
        return float(req.score)
    if req.thumbs is not None:
        return 1.0 if req.thumbs == "up" else 0.0
    raise APIError(
        400,
        "Missing required parameter: 'score' (0..1) or 'thumbs' ('up' or 'down').",
        code="missing_required_parameter",
        param="score",
    )


async def find_outcome(svc: services.Services, request_id: str):
    """The outcome record, waiting for one that is still queued for writing; None if unknown."""
    store, recorder = svc.store, svc.recorder
    deadline = time.monotonic() + GRACE_S
    while True:
        if recorder.pending(request_id):
            await recorder.wait_written(request_id, 5.0)
        outcome = await _store_call(store.get, request_id)
        if outcome is not None or time.monotonic() >= deadline:
            return outcome
        await asyncio.sleep(0.05)


async def _store_call(fn, *args):
    """A blocking store call in a worker thread; an unreachable store is a 503, not a 500."""
    try:
        return await asyncio.to_thread(fn, *args)
    except Exception as exc:
        if not _unreachable(exc):
            raise
        raise APIError(
            503,
            "Feedback cannot be stored while the outcome store (Redis) is unreachable; retry in 2s.",
            code="store_unavailable",
            headers={"Retry-After": "2"},
        ) from None


def _unreachable(exc: BaseException) -> bool:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a core dependency
        return isinstance(exc, OSError)
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)


def may_give_feedback(request: Request, outcome) -> bool:
    """The key that made the request, or the admin key (``request.state.admin``, set by the auth middleware)."""
    if getattr(request.state, "admin", False):
        return True
    return outcome.key_id == getattr(request.state, "key_id", None)


@router.post("/v1/feedback")
async def post_feedback(request: Request) -> JSONResponse:
    svc = services.of(request.app)
    rt = svc.runtime
    req = validate(FeedbackRequest, await read_json(request, rt.cfg.server.max_body_bytes))
    score = feedback_score(req)
    outcome = await find_outcome(svc, req.request_id)
    if outcome is None or not may_give_feedback(request, outcome):
        raise APIError(
            404, f"No request with id '{req.request_id}' was recorded.", code="request_not_found", param="request_id"
        )
    fb = Feedback(
        request_id=req.request_id, source=req.source, score=score, label=req.label, comment=req.comment, ts=time.time()
    )
    created = await _store_call(svc.store.add_feedback, fb)
    metrics.FEEDBACK.labels(req.source if _KNOWN_SOURCES.match(req.source) else "other").inc()
    learned = await svc.learner.learn(rt, outcome, score) if created else False
    return JSONResponse(
        {
            "object": "feedback",
            "request_id": req.request_id,
            "source": req.source,
            "score": score,
            "created": created,
            "policy": outcome.policy,
            "model": outcome.served,
            "online_update": learned,
        },
        status_code=201 if created else 200,
    )


@admin_router.get("/policies/{name}/state")
async def policy_state(name: str, request: Request) -> JSONResponse:
    svc = services.of(request.app)
    rt = svc.runtime
    if name not in rt.policies:
        raise APIError(404, f"Unknown policy '{name}'.", code="policy_not_found", param="name")
    return JSONResponse(await svc.learner.snapshot(rt, name))


@admin_router.get("/policies/{name}/learning")
async def policy_learning(name: str, request: Request) -> JSONResponse:
    """The shadow A/B comparison (``gateway.learning.abtest``) of the policy's last retrain report,
    read from ``Settings.retrain_dir`` (where ``shunter retrain`` writes it), and the live router."""
    svc = services.of(request.app)
    rt = svc.runtime
    if name not in rt.policies:
        raise APIError(404, f"Unknown policy '{name}'.", code="policy_not_found", param="name")
    rep = await asyncio.to_thread(metrics.RETRAINS.latest, name)
    if rep is None:
        raise APIError(404, f"No retrain report for policy '{name}' yet.", code="retrain_report_not_found")
    pol = rt.policies[name].cfg
    keys = ("created", "decision", "reason", "current", "candidate", "dry_run", "would_publish", "metrics")
    return JSONResponse(
        {
            "object": "policy.learning",
            "policy": name,
            "live_router": pol.router.path if pol.router else None,
            "report": {k: rep[k] for k in keys if k in rep},
            "shadow_ab": rep.get("shadow_ab"),
        }
    )
