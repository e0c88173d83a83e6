"""``POST /v1/embeddings``: passed through to the upstream named by ``model``; not routed.

Only upstreams that declare the ``embeddings`` capability serve it. The request still goes
through the pipeline (virtual key, limits, retries and breaker, outcome record, price at the
upstream's ``input_price``). llama.cpp's server answers a model without pooling with one vector
per token; those are mean-pooled into one vector per input, as every other server returns.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import Field, field_validator
from starlette.responses import Response

from gateway.errors import APIError
from gateway.ingress.base import ChatRequest, Ingress, Native
from gateway.ingress.body import validate
from gateway.protocol import ShunterOptions, _Open


class EmbeddingsRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: str | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    shunter: ShunterOptions | None = None
    stream: bool | None = False  # embeddings never stream; read by the pipeline like any request
    stream_options: Any = None

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("input must not be empty")
        return v

    def prompt_text(self) -> str:
        if isinstance(self.input, str):
            return self.input
        return "\n".join(t for t in self.input if isinstance(t, str))

    def wants_tools(self) -> bool:
        return False

    def has_image(self) -> bool:
        return False

    def wants_json(self) -> bool:
        return False


def _pooled(vec: Any) -> Any:
    """One vector per input: a per-token matrix (llama.cpp without pooling) is mean-pooled."""
    if isinstance(vec, list) and vec and isinstance(vec[0], list):
        n = len(vec)
        return [sum(col) / n for col in zip(*vec, strict=True)]
    return vec


class EmbeddingsIngress(Ingress):
    name = "embeddings"
    path = "/v1/embeddings"
    upstream_path = "/embeddings"
    request_model = EmbeddingsRequest
    routed = False

    def parse(self, data: dict[str, Any], server: Any) -> ChatRequest:
        req = validate(EmbeddingsRequest, data)
        body = {k: v for k, v in data.items() if k != "shunter"}
        return ChatRequest(req, body, self.upstream_path, Native("embeddings", "/embeddings", body))  # type: ignore[arg-type]

    async def prepare(self, ctx: Any) -> None:
        model = ctx.chat.req.model
        embedders = sorted(n for n, u in ctx.rt.cfg.upstreams.items() if "embeddings" in u.capabilities)
        if model not in embedders:
            raise APIError(
                400,
                f"'{model}' does not serve embeddings; the upstreams that do: {', '.join(embedders) or 'none'} "
                "(declare the 'embeddings' capability on an upstream).",
                code="model_not_found",
                param="model",
            )

    def native_usage(self, payload: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        u = payload.get("usage") or {}
        p = int(u.get("prompt_tokens") or 0)
        return {"prompt_tokens": p, "completion_tokens": 0, "total_tokens": int(u.get("total_tokens") or p)}, None

    def native_answer(self, chat: ChatRequest, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        payload["model"] = chat.served
        for item in payload.get("data") or []:
            if isinstance(item, dict):
                item["embedding"] = _pooled(item.get("embedding"))
        return Response(orjson.dumps(payload), media_type="application/json", headers=headers)
