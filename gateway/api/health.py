"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway import metrics
from gateway.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    svc = request.app.state.services
    if svc is None or not svc.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    rt = svc.runtime
    upstreams = {}
    for name, c in rt.clients.items():
        ok, why = c.available()
        upstreams[name] = "ok" if ok else why
    ready = any(v == "ok" for v in upstreams.values())
    return JSONResponse(
        {"status": "ready" if ready else "no upstream available", "upstreams": upstreams},
        status_code=200 if ready else 503,
    )


@router.get("/metrics")
async def metrics_endpoint() -> Response:
    body, ctype = metrics.render()
    return Response(body, media_type=ctype)
