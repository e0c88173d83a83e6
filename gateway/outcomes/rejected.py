"""One outcome record for a request refused before any upstream call (unknown model, bad override, no candidate)."""

from __future__ import annotations

import time
from typing import Any

from gateway import metrics
from gateway.errors import APIError
from gateway.outcomes.record import Outcome


def record_rejection(
    app: Any, request: Any, request_id: str, arrived: float, started: float, kind: str, exc: APIError
) -> None:
    """Count and record the refusal, and name the request id in the error response's headers."""
    policy = request.headers.get("x-shunter-policy") or None
    outcome = Outcome(
        request_id=request_id,
        ts=arrived,
        endpoint=kind,
        policy=policy,
        key_id=getattr(request.state, "key_id", None),
        reason="rejected",
        detail=exc.message[:500],
        status=exc.status,
        error_type=exc.code or exc.type,
        latency_s=time.perf_counter() - started,
    )
    metrics.REQUESTS.labels(policy or "", "none", f"{exc.status // 100}xx", "rejected").inc()
    exc.headers.setdefault("x-shunter-request-id", request_id)
    recorder = getattr(app.state, "recorder", None)
    if recorder is not None:
        recorder.submit(outcome)
