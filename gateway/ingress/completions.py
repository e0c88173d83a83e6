"""``POST /v1/completions``: OpenAI's legacy text completions."""

from __future__ import annotations

from typing import Any

from gateway.ingress.base import ChatRequest, Ingress
from gateway.ingress.body import validate
from gateway.protocol import CompletionRequest


class CompletionsIngress(Ingress):
    name = "completions"
    path = "/v1/completions"
    upstream_path = "/completions"
    request_model = CompletionRequest

    def parse(self, data: dict[str, Any], server: Any) -> ChatRequest:
        return ChatRequest(validate(CompletionRequest, data), data, self.upstream_path)
