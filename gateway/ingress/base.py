"""The ingress interface and the internal request every wire format parses into."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from gateway.errors import APIError
from gateway.protocol import ChatCompletionRequest, CompletionRequest, ErrorResponse


def translated(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` for a translation of a validated request; a shape it cannot read is a 400, not a 500."""
    try:
        return fn(*args)
    except APIError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        raise APIError(
            400, f"The request could not be read: {type(exc).__name__}: {exc}.", code="invalid_request"
        ) from None


@dataclass
class Native:
    """The client's own request, for an upstream that speaks its format (``UpstreamClient.speaks``)."""

    dialect: str  # "responses", "anthropic", "embeddings"
    path: str  # the upstream path, e.g. /messages
    body: dict[str, Any]  # the client's JSON without gateway fields; ``model`` is set per upstream


@dataclass
class ChatRequest:
    """The internal request: the validated OpenAI-form request and the body sent upstream.

    ``body`` is the client's JSON in OpenAI form (every pass-through field kept); the executor
    sets ``model`` (and stream options, reasoning effort) per upstream. ``upstream_path`` is the
    OpenAI path the upstreams serve it on.
    """

    req: ChatCompletionRequest | CompletionRequest
    body: dict[str, Any]
    upstream_path: str
    native: Native | None = None  # sent as is to an upstream that speaks the client's format
    state: Any = None  # the ingress's own per-request state (ids, the original request)
    served: str = ""  # the upstream that answered, set by the executor before formatting

    @property
    def stream(self) -> bool:
        return bool(self.req.stream)

    @property
    def include_usage(self) -> bool:
        opts = self.req.stream_options
        return bool(opts and opts.include_usage)


class Ingress:
    """One client wire format. Subclasses set the class attributes and override ``parse``.

    The defaults format answers and errors the OpenAI way; a non-OpenAI format overrides
    ``answer``, ``stream`` and ``error``.
    """

    name: str = ""  # the endpoint label in outcome records and metrics
    path: str = ""  # the public path, e.g. /v1/chat/completions
    upstream_path: str = ""
    request_model: type[BaseModel] = BaseModel
    response_model: type[BaseModel] | None = None

    error_model: type[BaseModel] = ErrorResponse
    routed: bool = True  # False: ``model`` names an upstream, policies and x-shunter-policy do not apply

    def parse(self, data: dict[str, Any], server: Any) -> ChatRequest:
        """Validate the client's JSON (``APIError`` 400 when it is wrong) into the internal request."""
        raise NotImplementedError

    async def prepare(self, ctx: Any) -> None:
        """After ``parse``, with the request context: what needs the runtime or shared state (stored conversations)."""
        return None

    def store_opt_out(self, chat: ChatRequest) -> bool:
        """Whether the client asked that nothing of this request be stored (OpenAI's ``store: false``):
        such a request is never shadowed (``gateway.learning.shadow``)."""
        return chat.body.get("store") is False

    def answer(self, chat: ChatRequest, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        """A complete OpenAI answer, in the client's format."""
        return Response(orjson.dumps(payload), media_type="application/json", headers=headers)

    def stream(self, chat: ChatRequest, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """OpenAI SSE events, in the client's streaming format."""
        return events

    # A native answer: the upstream spoke the client's format (``chat.native`` was sent).

    def native_usage(self, payload: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """Chat-shaped usage and the finish reason of a native answer, for accounting."""
        return payload.get("usage"), None

    def native_answer(self, chat: ChatRequest, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        payload["model"] = chat.served
        return Response(orjson.dumps(payload), media_type="application/json", headers=headers)

    def passthrough(self, chat: ChatRequest) -> Any:
        """The reader of a native stream (``feed``, ``failure``, ``done``, ``chat_usage``, ``finish_reason``)."""
        raise NotImplementedError

    def native_stream(self, chat: ChatRequest, events: AsyncIterator[bytes], reader: Any) -> AsyncIterator[bytes]:
        return events

    def error(self, exc: APIError) -> Response:
        """An error, in the client's format."""
        return exc.response()
