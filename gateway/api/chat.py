"""``POST /v1/chat/completions`` and ``POST /v1/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway.api.proxy import handle
from gateway.protocol import ChatCompletion, ChatCompletionRequest, CompletionRequest, ErrorResponse

router = APIRouter()

_ERRORS = {s: {"model": ErrorResponse} for s in (400, 401, 404, 413, 415, 429, 502, 503, 504)}


def _body(model) -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}
            },
        }
    }


@router.post(
    "/v1/chat/completions",
    responses={200: {"model": ChatCompletion}, **_ERRORS},
    openapi_extra=_body(ChatCompletionRequest),
)
async def chat_completions(request: Request) -> Response:
    return await handle(request, "chat")


@router.post("/v1/completions", responses=_ERRORS, openapi_extra=_body(CompletionRequest))
async def completions(request: Request) -> Response:
    return await handle(request, "completions")
