"""The body sent to one upstream, built the same way for every call (plain, stream, cascade stage)."""

from __future__ import annotations

from typing import Any

from gateway.policy import reasoning
from gateway.upstream.client import UpstreamClient


class BodyFor:
    """The upstream body for one upstream: the client's fields, its model id, stream options, reasoning effort."""

    __slots__ = ("body", "effort", "stream")

    def __init__(self, body: dict[str, Any], stream: bool, effort: str | None) -> None:
        self.body, self.stream, self.effort = body, stream, effort

    def __call__(self, client: UpstreamClient) -> dict[str, Any]:
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
