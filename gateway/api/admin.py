"""``/admin/*``: the running configuration and reloads; every route needs the admin key."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request

from gateway import services
from gateway.errors import APIError
from gateway.responses import JSONResponse
from gateway.secrets import admin_key


async def require_admin(request: Request) -> None:
    expected = admin_key(services.of(request.app).runtime.cfg.server)
    if not expected:
        raise APIError(
            403, "Admin endpoints are disabled: set SHUNTER_ADMIN_KEY (or server.admin_key).", code="admin_disabled"
        )
    auth = request.headers.get("authorization", "")
    given = auth[7:] if auth.lower().startswith("bearer ") else request.headers.get("x-admin-key", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise APIError(401, "Invalid admin key.", code="invalid_admin_key", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


@router.get("/config")
async def get_config(request: Request) -> JSONResponse:
    holder = services.of(request.app).runtimes
    rt = holder.current
    return JSONResponse(
        {
            "file": str(rt.path),
            "loaded_at": holder.loaded_at,
            "config": rt.cfg.model_dump(mode="json"),
            "last_reload": holder.last_reload,
        }
    )


@router.post("/reload")
async def reload(request: Request) -> JSONResponse:
    result = await services.of(request.app).reloader.reload("admin")
    return JSONResponse(result, status_code=200 if result["ok"] else 400)
