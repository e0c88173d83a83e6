"""Client wire formats: each parses its requests into the internal request and formats answers back.

``base.Ingress`` is the interface; ``chat`` and ``completions`` are OpenAI's two formats.
Another format (Responses, Anthropic Messages, embeddings) is one more ``Ingress`` registered in
``ENDPOINTS``: parse into a ``ChatRequest``, format the OpenAI answer (JSON or SSE events) and
errors back in the client's format. ``gateway.api.endpoints`` serves each one through the pipeline.
"""

from __future__ import annotations

from gateway.ingress.base import ChatRequest, Ingress
from gateway.ingress.chat import ChatIngress
from gateway.ingress.completions import CompletionsIngress

ENDPOINTS: tuple[Ingress, ...] = (ChatIngress(), CompletionsIngress())

__all__ = ["ENDPOINTS", "ChatRequest", "Ingress"]
