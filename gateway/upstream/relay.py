"""Relay an upstream SSE stream to the client chunk by chunk, never buffered whole.

Each ``data:`` event is re-emitted as soon as it is complete. The gateway rewrites ``model`` to
the served model's name, reads ``usage`` for accounting, and drops the usage-only chunk it asked
for on the client's behalf when the client did not ask for it. A failure after the first byte
ends the stream with an OpenAI-style error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson

from gateway.upstream.client import TransportError
from gateway.upstream.forward import Opened
from gateway.upstream.sse import DONE, error_event, event


@dataclass
class StreamResult:
    usage: dict | None = None
    finish_reason: str | None = None
    error: str | None = None
    first_byte_at: float | None = None
    content: list[str] = field(default_factory=list)
    chunks: int = 0
    chunk_id: str | None = None
    object: str | None = None
    created: int | None = None


async def relay(
    opened: Opened,
    served: str,
    client_wants_usage: bool,
    total_timeout: float,
    result: StreamResult,
    keep_content: bool = True,
    estimate_usage: Callable[[str], dict] | None = None,
) -> AsyncIterator[bytes]:
    """Yield SSE bytes for the client.

    When the upstream sends no usage (llama.cpp's server ignores ``stream_options``), the usage is
    estimated with ``estimate_usage(completion_text)`` and, if the client asked for it, sent as
    OpenAI's final usage-only chunk with ``"estimated": true``.
    """
    buf = b""
    deadline = time.monotonic() + total_timeout
    saw_done = False
    try:
        pending: list[bytes] = [opened.first_chunk] if opened.first_chunk else []
        next_chunk = opened.response.next_chunk
        while True:
            if pending:
                piece = pending.pop()
            else:
                if time.monotonic() > deadline:
                    raise asyncio.TimeoutError
                piece = await next_chunk()
                if not piece:
                    break
            buf += piece
            if b"\r\n" in buf:
                buf = buf.replace(b"\r\n", b"\n")
            if b"\n\n" not in buf:
                continue
            *blocks, buf = buf.split(b"\n\n")
            outs: list[bytes] = []
            for block in blocks:
                out = _process(block, served, client_wants_usage, result, keep_content)
                if out is None:
                    continue
                if out is DONE:  # held back: a usage chunk may have to go first
                    saw_done = True
                    continue
                outs.append(out)
            if outs:  # the events of one upstream read leave in one write (one ASGI send, one syscall)
                if result.first_byte_at is None:
                    result.first_byte_at = time.perf_counter()
                yield outs[0] if len(outs) == 1 else b"".join(outs)
        if buf.strip():
            out = _process(buf, served, client_wants_usage, result, keep_content)
            if out is DONE:
                saw_done = True
            elif out:
                yield out
        if result.error is not None:
            return
        if result.finish_reason is None and not saw_done:
            result.error = "upstream closed the stream before finishing"
            yield error_event(
                "The upstream closed the stream before the response was complete.", code="upstream_incomplete"
            )
            return
        if result.usage is None and estimate_usage is not None:
            result.usage = {**estimate_usage("".join(result.content)), "estimated": True}
            if client_wants_usage:
                yield event(
                    {
                        "id": result.chunk_id,
                        "object": result.object or "chat.completion.chunk",
                        "created": result.created,
                        "model": served,
                        "choices": [],
                        "usage": result.usage,
                    }
                )
        yield DONE
    except (*TransportError, asyncio.TimeoutError) as exc:
        kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else "disconnected"
        result.error = f"midstream_{kind}"
        yield error_event(
            f"The upstream stream failed after it started ({kind}); the response is incomplete.",
            code=f"upstream_{kind}",
        )
    finally:
        await opened.aclose()


def _process(block: bytes, served: str, wants_usage: bool, result: StreamResult, keep: bool) -> bytes | None:
    data = b"".join(line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:"))
    if not data:
        return None
    if data.strip() == b"[DONE]":
        return DONE
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return block + b"\n\n"
    if not isinstance(obj, dict):
        return block + b"\n\n"
    result.chunks += 1
    if result.chunk_id is None:
        result.chunk_id, result.object, result.created = obj.get("id"), obj.get("object"), obj.get("created")
    if "error" in obj:
        err = obj["error"]
        result.error = err.get("message", "upstream error") if isinstance(err, dict) else str(err)
        return event(obj)
    if "model" in obj:
        obj["model"] = served
    usage = obj.get("usage")
    if usage:
        result.usage = usage
    choices = obj.get("choices") or []
    for ch in choices:
        if ch.get("finish_reason"):
            result.finish_reason = ch["finish_reason"]
        if keep:
            delta = ch.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
            if text is None:
                text = ch.get("text")
            if text:
                result.content.append(text)
    if not wants_usage:
        if usage and not choices:
            return None
        obj.pop("usage", None)
    return event(obj)
