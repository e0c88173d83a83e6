"""``POST /v1/feedback`` (joined to an outcome by request id) and ``GET /admin/policies/{name}/state``.

Outcome records are written asynchronously, so feedback may arrive before its record reaches the
store. The handler waits for a record that is still queued (``Recorder.wait_written``, up to
5 s), then looks it up; a streamed response's record is submitted just after its last byte, so
an id found nowhere is looked up again for up to ``GRACE_S`` before the 404.
"""

from __future__ import annotations

import asyncio
import re
import time

from fastapi import APIRouter, Depends, Request

from gateway import metrics
from gateway.api.admin import require_admin
from gateway.api.body import read_json, validate
from gateway.errors import APIError
from gateway.learning import online
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


async def find_outcome(app, request_id: str):
    """The outcome record, waiting for one that is still queued for writing; None if unknown."""
    store, recorder = app.state.store, app.state.recorder
    deadline = time.monotonic() + GRACE_S
    while True:
        if recorder.pending(request_id):
            await recorder.wait_written(request_id, 5.0)
        outcome = await asyncio.to_thread(store.get, request_id)
        if outcome is not None or time.monotonic() >= deadline:
            return outcome
        await asyncio.sleep(0.05)


@router.post("/v1/feedback")
async def post_feedback(request: Request) -> JSONResponse:
    app = request.app
    rt = app.state.runtime
    req = validate(FeedbackRequest, await read_json(request, rt.cfg.server.max_body_bytes))
    score = feedback_score(req)
    outcome = await find_outcome(app, req.request_id)
    if outcome is None:
        raise APIError(
            404, f"No request with id '{req.request_id}' was recorded.", code="request_not_found", param="request_id"
        )
    fb = Feedback(
        request_id=req.request_id, source=req.source, score=score, label=req.label, comment=req.comment, ts=time.time()
    )
    created = await asyncio.to_thread(app.state.store.add_feedback, fb)
    metrics.FEEDBACK.labels(req.source if _KNOWN_SOURCES.match(req.source) else "other").inc()
    learned = await online.learn(rt, outcome, score) if created else False
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
    rt = request.app.state.runtime
    if name not in rt.policies:
        raise APIError(404, f"Unknown policy '{name}'.", code="policy_not_found", param="name")
    return JSONResponse(await online.snapshot(rt, name))
