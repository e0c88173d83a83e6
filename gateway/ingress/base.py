"""The ingress interface and the internal request every wire format parses into."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from gateway.errors import APIError
from gateway.protocol import ChatCompletionRequest, CompletionRequest


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

    def parse(self, data: dict[str, Any], server: Any) -> ChatRequest:
        """Validate the client's JSON (``APIError`` 400 when it is wrong) into the internal request."""
        raise NotImplementedError

    def answer(self, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        """A complete OpenAI answer, in the client's format."""
        return Response(orjson.dumps(payload), media_type="application/json", headers=headers)

    def stream(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """OpenAI SSE events, in the client's streaming format."""
        return events

    def error(self, exc: APIError) -> Response:
        """An error, in the client's format."""
        return exc.response()
