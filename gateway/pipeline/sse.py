"""One "answer as SSE" writer, and the streaming response that always closes its body.

A complete answer (a cache hit, a cascade's chosen answer) goes to a client that asked for
``stream: true`` as OpenAI chunks: for each choice one chunk with the whole message (chat:
``delta`` with role, content and the tool calls, each ``{"index": i, ...}`` in the message's
order; text completions: ``text``) and one with its ``finish_reason``; then, on request, the
usage-only chunk; then ``[DONE]``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import StreamingResponse

from gateway.upstream.sse import DONE, event


def answer_events(payload: dict[str, Any], include_usage: bool) -> list[bytes]:
    """The complete answer ``payload`` (a chat or text completion) as SSE events."""
    chat = str(payload.get("object") or "").startswith("chat")
    obj = "chat.completion.chunk" if chat else "text_completion"
    base = {
        "id": payload.get("id", ""),
        "object": obj,
        "created": payload.get("created") or int(time.time()),
        "model": payload.get("model", ""),
    }
    out: list[bytes] = []
    for ch in payload.get("choices") or []:
        idx = ch.get("index", 0)
        if chat:
            msg: dict[str, Any] = ch.get("message") or {}
            delta: dict[str, Any] = {"role": msg.get("role", "assistant"), "content": msg.get("content")}
            if msg.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **tc} for i, tc in enumerate(msg["tool_calls"])]
            first = {"index": idx, "delta": delta, "finish_reason": None}
            last = {"index": idx, "delta": {}, "finish_reason": ch.get("finish_reason")}
        else:
            first = {"index": idx, "text": ch.get("text") or "", "finish_reason": None}
            last = {"index": idx, "text": "", "finish_reason": ch.get("finish_reason")}
        out.append(event({**base, "choices": [first]}))
        out.append(event({**base, "choices": [last]}))
    if include_usage and payload.get("usage"):
        out.append(event({**base, "choices": [], "usage": payload["usage"]}))
    out.append(DONE)
    return out


class ClosingStreamingResponse(StreamingResponse):
    """A ``StreamingResponse`` that closes its body iterator however the response ends.

    Starlette abandons the iterator when the client disconnects or the request is cancelled (the
    deadline middleware); its ``finally`` blocks, which release the upstream connection and
    finish the request, would then wait for the garbage collector. Closing it here runs them at once.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
