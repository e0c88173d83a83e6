"""The body sent to one upstream, built the same way for every call (plain, stream, cascade stage)."""

from __future__ import annotations

from typing import Any

from gateway.ingress.base import Native
from gateway.policy import reasoning
from gateway.upstream.client import UpstreamClient
from gateway.upstream.forward import NativeBody


class BodyFor:
    """The upstream body for one upstream: the client's fields, its model id, stream options, reasoning effort.

    An upstream that speaks the client's own format (``native``: a Responses, Messages or
    embeddings request) gets the client's request instead, with its model id.
    """

    __slots__ = ("body", "effort", "native", "stream")

    def __init__(self, body: dict[str, Any], stream: bool, effort: str | None, native: Native | None = None) -> None:
        self.body, self.stream, self.effort, self.native = body, stream, effort, native

    def __call__(self, client: UpstreamClient) -> dict[str, Any] | NativeBody:
        if self.native is not None and client.speaks(self.native.dialect):
            return NativeBody(self.native.path, {**self.native.body, "model": client.model_id})
        body = {k: v for k, v in self.body.items() if k != "shunter"}
        body["model"] = client.model_id
        if self.stream:
            opts = dict(body.get("stream_options") or {})
            opts["include_usage"] = True
            body["stream_options"] = opts
        elif body.get("stream"):  # a streaming client answered from a complete upstream call (cascade)
            body.pop("stream")
            body.pop("stream_options", None)
        return reasoning.apply(body, client, self.effort)
