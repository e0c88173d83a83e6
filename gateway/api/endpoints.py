"""The ASGI app behind every client endpoint: one dispatch path, registered as a plain Starlette route.

The hot endpoints skip FastAPI's per-route machinery (dependency solving, the endpoint wrapper,
the exit stack), which cost about a third of the gateway's CPU per proxied request in profiles;
``schema_routes`` still describes them in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.routing import Route

from gateway import services
from gateway.errors import APIError
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
