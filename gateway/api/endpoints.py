"""The one dispatch path of the client endpoints: ``HotRoutes``, the innermost middleware.

Every ``POST <ingress.path>`` runs ``Endpoint`` (the pipeline for that wire format) inside the
auth and deadline middlewares and outside FastAPI's router: its exception middleware, exit stack,
route matching and endpoint wrapper cost about 15% of the gateway's CPU per proxied request
(``bench/revs.py``), and the pipeline needs none of them (``pipeline.run.handle`` turns every
exception into the client's error format). The endpoints are not registered with FastAPI;
``schema_routes`` only describes them in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from gateway import services
from gateway.errors import APIError, http_handler
from gateway.ingress.base import Ingress

ERROR_STATUSES = (400, 401, 404, 413, 415, 429, 502, 503, 504)


class Endpoint:
    """``POST <ingress.path>``: the pipeline for one wire format."""

    def __init__(self, ingress: Ingress) -> None:
        self.ingress = ingress

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from gateway.pipeline.run import handle

        request = Request(scope, receive, send)
        try:
            svc = services.of(scope["app"])
        except APIError as exc:
            return await self.ingress.error(exc)(scope, receive, send)
        response = await handle(svc, self.ingress, request)
        await response(scope, receive, send)


def routes(ingresses: tuple[Ingress, ...]) -> list[Route]:
    return [Route(i.path, Endpoint(i), methods=["POST"]) for i in ingresses]


class HotRoutes:
    """Middleware: a client endpoint's path goes to its ``Route`` (405 for a method other than
    POST), every other path to the rest of the app (FastAPI's router)."""

    def __init__(self, app: Any, ingresses: tuple[Ingress, ...]) -> None:
        self.app = app
        self.routes = {r.path: r for r in routes(ingresses)}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)
        if scope["method"] == "POST":
            return await route.app(scope, receive, send)  # the Endpoint itself
        request = Request(scope, receive, send)  # any other method: the 405 FastAPI's handler writes
        response = await http_handler(request, StarletteHTTPException(405, headers={"Allow": "POST"}))
        await response(scope, receive, send)


def schema_routes(ingresses: tuple[Ingress, ...]) -> list[Any]:
    """FastAPI routes that only document the endpoints (never mounted: ``routes`` serves them)."""
    router = APIRouter()
    for i in ingresses:
        body = {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": i.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
                    }
                },
            }
        }
        errors: dict[int | str, dict[str, Any]] = {s: {"model": i.error_model} for s in ERROR_STATUSES}
        responses = {200: {"model": i.response_model}, **errors} if i.response_model else errors

        async def documented(request: Request) -> Response:  # pragma: no cover - never mounted
            raise NotImplementedError

        router.add_api_route(
            i.path,
            documented,
            methods=["POST"],
            responses=responses,
            openapi_extra=body,
            name=i.path.removeprefix("/v1/").replace("/", "_"),
        )
    return list(router.routes)
