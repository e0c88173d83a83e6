"""Client wire formats: each parses its requests into the internal request and formats answers back.

``base.Ingress`` is the interface; ``chat`` and ``completions`` are OpenAI's two formats,
``responses`` (OpenAI Responses API) and ``messages`` (Anthropic Messages) translate to chat and
back (``gateway.translate``), or pass through natively to an upstream that speaks them, and
``embeddings`` passes through to an embedding upstream. Each parses into a ``ChatRequest``,
formats the OpenAI answer (JSON or SSE events) and errors back in the client's format. ``gateway.api.endpoints`` serves each one through the pipeline.
"""

from __future__ import annotations

from gateway.ingress.base import ChatRequest, Ingress
from gateway.ingress.chat import ChatIngress
from gateway.ingress.completions import CompletionsIngress
from gateway.ingress.embeddings import EmbeddingsIngress
from gateway.ingress.messages import MessagesIngress
from gateway.ingress.responses import ResponsesIngress

ENDPOINTS: tuple[Ingress, ...] = (
    ChatIngress(),
    CompletionsIngress(),
    ResponsesIngress(),
    MessagesIngress(),
    EmbeddingsIngress(),
)

__all__ = ["ENDPOINTS", "ChatRequest", "Ingress"]
