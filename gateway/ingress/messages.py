"""``POST /v1/messages``: Anthropic's Messages API as a second way in, routed by the same policies.

The request is translated to chat for OpenAI-compatible upstreams and the answer back
(``translate.anthropic``), plain or streamed; an upstream of ``kind: anthropic`` gets the
request natively and its answer passes through with the served model. Errors are in
Anthropic's shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response

from gateway.errors import APIError
from gateway.ingress.base import ChatRequest, Ingress, Native, translated
from gateway.ingress.body import validate
from gateway.protocol import ChatCompletionRequest
from gateway.translate import anthropic as an
from gateway.translate.streams import AnthropicPassthrough, from_chat


class MessagesIngress(Ingress):
    name = "messages"
    path = "/v1/messages"
    upstream_path = "/chat/completions"
    request_model = an.MessagesRequest
    error_model = an.AnthropicErrorResponse

    def parse(self, data: dict[str, Any], server: Any) -> ChatRequest:
        req = validate(an.MessagesRequest, data)
        body = translated(an.to_chat, req)
        if req.stream:
            body["stream_options"] = {"include_usage": True}  # message_delta carries the usage
        chat_req = validate(ChatCompletionRequest, body)
        if len(chat_req.messages) > server.max_messages:
            raise APIError(
                400,
                f"Too many messages: {len(chat_req.messages)} (limit {server.max_messages}).",
                code="too_many_messages",
                param="messages",
            )
        native = {k: v for k, v in data.items() if k != "shunter"}
        return ChatRequest(chat_req, body, self.upstream_path, Native("anthropic", "/messages", native), req)

    def answer(self, chat: ChatRequest, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        msg = an.from_chat(payload, chat.served)
        return Response(orjson.dumps(msg), media_type="application/json", headers=headers)

    def stream(self, chat: ChatRequest, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return from_chat(events, an.AnthropicStream(chat.served))

    def native_usage(self, payload: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        stop = payload.get("stop_reason")
        return an.chat_usage(payload.get("usage")), an.STOP_TO_FINISH.get(stop, "stop") if stop else None

    def passthrough(self, chat: ChatRequest) -> AnthropicPassthrough:
        return AnthropicPassthrough(chat.served)

    def error(self, exc: APIError) -> Response:
        return exc.anthropic_response()
