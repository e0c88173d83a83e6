"""Errors with the right status, in the client's format.

OpenAI's ``{"error": {"message", "type", "param", "code"}}`` everywhere, except for Anthropic
clients (``/v1/messages`` and anything sent with an ``anthropic-version`` header), which get
``{"type": "error", "error": {"type", "message"}}``. A path the gateway does not serve answers
404 (unknown) or 501 (an OpenAI or Anthropic endpoint it does not implement), naming the ones it does.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.responses import JSONResponse

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


class APIError(Exception):
    """An error the gateway reports to the client in OpenAI's format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)

    def anthropic_body(self) -> dict:
        return {
            "type": "error",
            "error": {"type": ANTHROPIC_TYPES.get(self.status, "api_error"), "message": self.message},
        }

    def anthropic_response(self) -> JSONResponse:
        return JSONResponse(self.anthropic_body(), status_code=self.status, headers=self.headers)

    def response_for(self, path: str, headers: Any) -> JSONResponse:
        """The error as the client at ``path`` (with request ``headers``) expects it."""
        return self.anthropic_response() if is_anthropic(path, headers) else self.response()


ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    499: "api_error",
    500: "api_error",
    501: "not_found_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}

SUPPORTED = (
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/responses",
    "POST /v1/embeddings",
    "POST /v1/messages",
    "GET /v1/models",
)
# Endpoints of the OpenAI and Anthropic APIs that clients may try and the gateway does not implement.
NOT_IMPLEMENTED = (
    "/v1/assistants",
    "/v1/audio",
    "/v1/batches",
    "/v1/complete",
    "/v1/containers",
    "/v1/conversations",
    "/v1/evals",
    "/v1/files",
    "/v1/fine_tuning",
    "/v1/images",
    "/v1/messages/",
    "/v1/moderations",
    "/v1/realtime",
    "/v1/responses/",
    "/v1/threads",
    "/v1/uploads",
    "/v1/vector_stores",
    "/v1/videos",
)


def is_anthropic(path: str, headers: Any) -> bool:
    if path == "/v1/messages" or path.startswith(("/v1/messages/", "/v1/complete")):
        return True
    return bool(headers is not None and headers.get("anthropic-version"))


def unsupported(method: str, path: str) -> APIError:
    """404 for a path nobody serves, 501 for an API endpoint this gateway does not implement."""
    served = "; this gateway serves " + ", ".join(SUPPORTED) + "."
    for p in NOT_IMPLEMENTED:
        if path.startswith(p) if p.endswith("/") else (path == p or path.startswith(p + "/")):
            msg = f"{method} {path} is not implemented{served}"
            return APIError(501, msg, code="not_implemented", type="not_implemented")
    return APIError(404, f"No endpoint {method} {path}{served}", code="unknown_endpoint")


def _loc(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


async def api_error_handler(request: Request, exc: APIError) -> JSONResponse:
    return exc.response_for(request.url.path, request.headers)


async def validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = _loc(tuple(err.get("loc", ())))
    if err.get("type") == "missing":
        msg = f"Missing required parameter: '{param}'."
    else:
        msg = f"Invalid value for '{param}': {err.get('msg')}." if param else str(err.get("msg"))
    return APIError(
        400,
        msg,
        param=param or None,
        code="invalid_value" if err.get("type") != "missing" else "missing_required_parameter",
    ).response_for(request.url.path, request.headers)


async def http_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    path = request.url.path
    if exc.status_code == 404:
        err = unsupported(request.method, path)
    elif exc.status_code == 405:
        allowed = ", ".join(e for e in SUPPORTED if e.endswith(" " + path)) or ", ".join(SUPPORTED)
        headers = dict(exc.headers) if exc.headers else None
        err = APIError(405, f"{request.method} is not allowed on {path}; use {allowed}.", headers=headers)
    else:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        err = APIError(exc.status_code, message, headers=dict(exc.headers) if exc.headers else None)
    return err.response_for(path, request.headers)


async def unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    import logging

    logging.getLogger("shunter").exception("unhandled error")
    return APIError(500, "Internal gateway error.", code="internal_error").response_for(
        request.url.path, request.headers
    )
