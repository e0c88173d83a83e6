"""An upstream of ``kind: anthropic`` seen through the OpenAI chat format.

The executor speaks OpenAI chat to every upstream. For an Anthropic upstream the client turns a
chat call into a Messages call (``/messages``, ``x-api-key`` and ``anthropic-version``
headers, ``translate.anthropic.chat_to_messages``) and wraps the response in ``AsChat``, which
reads as a chat response: a plain body is translated whole, a stream event by event as it
arrives, so retries, fallback, relay, usage accounting and the cache work unchanged. A request
that already is a Messages request (``POST /v1/messages``) is sent natively instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from gateway.translate import anthropic as an
from gateway.translate.sse import Parser
from gateway.upstream.sse import DONE

if TYPE_CHECKING:  # forward.py calls prepare/wrap with a client and its response: no import cycle
    from gateway.upstream.client import UpstreamClient, UpstreamResponse

CHAT_PATH = "/chat/completions"
MESSAGES_PATH = "/messages"


def _event(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def prepare(client: UpstreamClient, path: str, body: dict) -> tuple[str, dict]:
    """The path and body actually sent for an OpenAI-form call (an Anthropic upstream gets Messages)."""
    if client.cfg.kind == "anthropic" and path == CHAT_PATH:
        return MESSAGES_PATH, an.chat_to_messages(body, client.model_id)
    return path, body


def wrap(client: UpstreamClient, resp: UpstreamResponse, path: str) -> UpstreamResponse:
    """The response as the executor reads it: an Anthropic answer to a chat call reads as chat."""
    if client.cfg.kind == "anthropic" and path == CHAT_PATH:
        return AsChat(resp, client.name)  # type: ignore[return-value]
    return resp


def error_as_openai(raw: bytes) -> bytes:
    """An Anthropic error body in OpenAI's shape (the executor reads ``error.message``)."""
    try:
        err = orjson.loads(raw).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return raw
    if not isinstance(err, dict):
        return raw
    return orjson.dumps(
        {"error": {"message": err.get("message"), "type": err.get("type"), "param": None, "code": None}}
    )


class AsChat:
    """An Anthropic Messages response that reads as an OpenAI chat-completions response."""

    __slots__ = ("_done", "_parser", "_resp", "_tr")

    def __init__(self, resp: UpstreamResponse, served: str) -> None:
        self._resp = resp
        self._parser = Parser()
        self._tr = an.ChatFromAnthropic(served)
        self._done = False

    @property
    def status_code(self) -> int:
        return self._resp.status_code

    @property
    def headers(self):
        return self._resp.headers

    async def aread(self) -> bytes:
        raw = await self._resp.aread()
        if self.status_code != 200:
            return error_as_openai(raw)
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw  # not JSON: the executor's body check rejects it as from any upstream
        if not isinstance(msg, dict) or msg.get("type") != "message":
            return raw
        return orjson.dumps(an.to_chat_completion(msg, self._tr.served))

    def _translate(self, events) -> bytes:
        out = []
        for ev in events:
            if not ev.data:
                continue
            try:
                obj = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                continue
            for chunk in self._tr.feed(obj):
                out.append(_event(chunk))
            if obj.get("type") in ("message_stop", "error"):
                self._done = True
                out.append(DONE)
        return b"".join(out)

    async def next_chunk(self, wait: float | None = None) -> bytes:
        """The next chat SSE bytes (``b""`` at the end); upstream pieces with no whole event are read through."""
        while True:
            if self._done:
                return b""
            piece = await self._resp.next_chunk(wait)
            if not piece:
                self._done = True
                return self._translate(self._parser.close())
            out = self._translate(self._parser.feed(piece))
            if out:
                return out

    async def aclose(self) -> None:
        await self._resp.aclose()
