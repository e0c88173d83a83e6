"""``/admin/keys``: create (the plain key is in this one response only), list and revoke keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gateway import services
from gateway.api.admin import require_admin
from gateway.errors import APIError
from gateway.limits.keys import KeySpec
from gateway.responses import JSONResponse

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


def _public(rec) -> dict:
    return {"id": rec.id, "created": rec.created, "revoked": rec.revoked, **rec.spec.model_dump()}


@router.post("/keys", status_code=201)
async def create_key(spec: KeySpec, request: Request) -> JSONResponse:
    svc = services.of(request.app)
    rt = svc.runtime
    unknown = [p for p in spec.policies or [] if p not in rt.policies]
    unknown += [m for m in spec.models or [] if m not in rt.clients]
    if unknown:
        raise APIError(400, f"Unknown policies or models: {', '.join(unknown)}.", code="invalid_value")
    rec, key = await svc.guard.create(spec)
    return JSONResponse(
        {**_public(rec), "key": key, "note": "Store this key now: it is not shown again."}, status_code=201
    )


@router.get("/keys")
async def list_keys(request: Request) -> JSONResponse:
    """Every key; a key with a budget shows ``spent_usd`` in its current period (shared across replicas)."""
    guard = services.of(request.app).guard
    data = []
    for rec in guard.keys.list():
        row = _public(rec)
        if rec.spec.budget_usd is not None:
            row["spent_usd"] = await guard.spent(rec)
        data.append(row)
    return JSONResponse({"data": data})


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, request: Request) -> JSONResponse:
    if not await services.of(request.app).guard.revoke(key_id):
        raise APIError(404, f"No live key '{key_id}'.", code="key_not_found")
    return JSONResponse({"id": key_id, "revoked": True})
