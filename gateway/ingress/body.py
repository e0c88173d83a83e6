"""Read and validate a JSON request body with OpenAI-style errors (415, 413, 400)."""

from __future__ import annotations

from typing import TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from gateway.errors import APIError, _loc
from gateway.protocol import check_content_type, check_depth

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, max_bytes: int) -> dict:
    check_content_type(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise APIError(
            413, f"Request body of {declared} bytes exceeds the limit of {max_bytes} bytes.", code="request_too_large"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise APIError(413, f"Request body exceeds the limit of {max_bytes} bytes.", code="request_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise APIError(400, "The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    check_depth(raw, data)
    return data


def validate(model: type[M], data: dict) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = _loc(tuple(err["loc"]))
        if err["type"] == "missing":
            raise APIError(
                400, f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
            ) from None
        raise APIError(
            400, f"Invalid value for '{param}': {err['msg']}.", code="invalid_value", param=param or None
        ) from None
