"""``POST /v1/chat/completions``: OpenAI's chat format, which is also the internal one."""

from __future__ import annotations

from typing import Any

from gateway.errors import APIError
from gateway.ingress.base import ChatRequest, Ingress
from gateway.ingress.body import validate
from gateway.protocol import ChatCompletion, ChatCompletionRequest


class ChatIngress(Ingress):
    name = "chat"
    path = "/v1/chat/completions"
    upstream_path = "/chat/completions"
    request_model = ChatCompletionRequest
    response_model = ChatCompletion

    def parse(self, data: dict[str, Any], server: Any) -> ChatRequest:
        req = validate(ChatCompletionRequest, data)
        if len(req.messages) > server.max_messages:
            raise APIError(
                400,
                f"Too many messages: {len(req.messages)} (limit {server.max_messages}).",
                code="too_many_messages",
                param="messages",
            )
        return ChatRequest(req, data, self.upstream_path)
