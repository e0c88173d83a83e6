"""Streams in the client's format: chat SSE translated, or a native upstream stream passed through.

- ``from_chat``: the executor's OpenAI chat SSE (``data: {chunk}`` ... ``data: [DONE]``, or a
  ``data: {"error": ...}`` event when the upstream broke midway) through a translator
  (``ResponsesStream`` or ``AnthropicStream``) into named events.
- ``AnthropicPassthrough`` / ``ResponsesPassthrough``: a native upstream stream re-emitted event
  by event with the served model (and the gateway's response id), reading the usage, the stop
  reason and, for Responses, the final output as it goes by.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import orjson

from gateway.translate import anthropic as an
from gateway.translate import responses as rs
from gateway.translate.sse import Parser, named, typed


class Translator(Protocol):
    def start(self) -> list[dict]: ...
    def feed(self, chunk: dict) -> list[dict]: ...
    def finish(self, usage: dict | None = None) -> list[dict]: ...


def _error_events(tr: Any, err: dict) -> list[dict]:
    message = err.get("message") or "The upstream failed."
    if isinstance(tr, rs.ResponsesStream):
        return tr.fail(message, err.get("code"))
    status = 504 if "timeout" in str(err.get("code")) else 502
    return [an.error_body(status, message)]


async def from_chat(
    events: AsyncIterator[bytes],
    tr: Translator,
    before_finish: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    """Translate chat SSE bytes; ``before_finish`` runs (awaited) before the final events leave."""
    parser = Parser()
    out = [typed(e) for e in tr.start()]
    yield b"".join(out)
    async for piece in events:
        out = []
        for ev in parser.feed(piece):
            if ev.data == "[DONE]":
                if before_finish is not None:
                    await before_finish()
                out += [typed(e) for e in tr.finish()]
                yield b"".join(out)
                return
            try:
                chunk = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict) and "error" in chunk:
                out += [typed(e) for e in _error_events(tr, chunk["error"] or {})]
                yield b"".join(out)
                return
            out += [typed(e) for e in tr.feed(chunk)]
        if out:
            yield b"".join(out)


class AnthropicPassthrough:
    """A native Anthropic stream: events as sent, the served model in ``message_start``."""

    def __init__(self, served: str) -> None:
        self.served = served
        self.parser = Parser()
        self.usage: dict = {}
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.done = False
        self.text: list[str] = []

    def feed(self, piece: bytes, final: bool = False) -> bytes:
        out = []
        for ev in self.parser.feed(piece) + (self.parser.close() if final else []):
            try:
                obj = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                continue
            kind = obj.get("type")
            if kind == "message_start":
                msg = obj.get("message") or {}
                msg["model"] = self.served
                self.usage.update(msg.get("usage") or {})
            elif kind == "message_delta":
                self.usage.update({k: v for k, v in (obj.get("usage") or {}).items() if v is not None})
                self.stop_reason = (obj.get("delta") or {}).get("stop_reason") or self.stop_reason
            elif kind == "content_block_delta" and (obj.get("delta") or {}).get("type") == "text_delta":
                self.text.append(obj["delta"].get("text", ""))
            elif kind == "message_stop":
                self.done = True
            elif kind == "error":
                self.error = str((obj.get("error") or {}).get("message") or "upstream error")
            out.append(named(ev.event or kind or "message", obj))
        return b"".join(out)

    @property
    def finish_reason(self) -> str | None:
        return an.STOP_TO_FINISH.get(self.stop_reason, "stop") if self.stop_reason else None

    def chat_usage(self) -> dict | None:
        return an.chat_usage(self.usage) if self.usage else None

    def failure(self, message: str) -> bytes:
        return typed(an.error_body(502, message))


class ResponsesPassthrough:
    """A native Responses stream: events as sent, with the gateway's response id and served model."""

    FINAL = ("response.completed", "response.incomplete", "response.failed")

    def __init__(self, response_id: str, served: str) -> None:
        self.response_id = response_id
        self.served = served
        self.parser = Parser()
        self.final: dict | None = None
        self.error: str | None = None
        self.text: list[str] = []
        self.seq = 0

    def feed(self, piece: bytes, final: bool = False) -> bytes:
        out = []
        for ev in self.parser.feed(piece) + (self.parser.close() if final else []):
            if ev.data == "[DONE]":
                continue
            try:
                obj = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                continue
            kind = obj.get("type") or ev.event
            resp = obj.get("response")
            if isinstance(resp, dict):
                resp["id"], resp["model"] = self.response_id, self.served
            if kind in self.FINAL:
                self.final = resp
                if kind == "response.failed":
                    self.error = str(((resp or {}).get("error") or {}).get("message") or "response failed")
            elif kind == "error":
                self.error = str(obj.get("message") or "upstream error")
            elif kind == "response.output_text.delta":
                self.text.append(obj.get("delta") or "")
            self.seq = max(self.seq, int(obj.get("sequence_number") or 0) + 1)
            out.append(named(kind or "message", obj))
        return b"".join(out)

    @property
    def done(self) -> bool:
        return self.final is not None

    @property
    def finish_reason(self) -> str | None:
        if self.final is None:
            return None
        status = self.final.get("status")
        if status == "incomplete":
            return "length"
        return "stop" if status == "completed" else status

    def chat_usage(self) -> dict | None:
        return rs.chat_usage((self.final or {}).get("usage"))

    def failure(self, message: str) -> bytes:
        return typed(
            {"type": "error", "sequence_number": self.seq, "code": "server_error", "message": message, "param": None}
        )
