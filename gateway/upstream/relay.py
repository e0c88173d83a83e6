"""Relay an upstream SSE stream to the client chunk by chunk, never buffered whole.

Each ``data:`` event is checked against the OpenAI chunk schema and re-emitted as soon as it is
complete. The gateway rewrites ``model`` to the served model's name, reads ``usage`` for
accounting, and drops the usage-only chunk it asked for on the client's behalf when the client
did not ask for it. A failure after the first byte ends the stream with our own OpenAI-style
error event: a reset, a stall (idle timeout), a malformed event (not JSON, wrong types), or an
error event from the upstream, whose text is relayed only after every configured secret was
redacted from it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import orjson

from gateway.protocol import chunk_problem
from gateway.secrets import redact, redact_bytes
from gateway.upstream.client import TransportError
from gateway.upstream.forward import Opened
from gateway.upstream.sse import DONE, error_event, event


class _StreamFault(Exception):
    """The upstream stream cannot go on: ``kind`` goes to the outcome, ``message`` to the client."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.message = kind, code, message


@dataclass
class StreamResult:
    usage: dict | None = None
    finish_reason: str | None = None
    error: str | None = None
    first_byte_at: float | None = None
    content: list[str] = field(default_factory=list)
    chunk_id: str | None = None
    object: str | None = None
    created: int | None = None


async def relay(
    opened: Opened,
    served: str,
    client_wants_usage: bool,
    total_timeout: float,
    result: StreamResult,
    estimate_usage: Callable[[str], dict] | None = None,
) -> AsyncGenerator[bytes, None]:
    """Yield SSE bytes for the client.

    When the upstream sends no usage (llama.cpp's server ignores ``stream_options``), the usage is
    estimated with ``estimate_usage(completion_text)`` and, if the client asked for it, sent as
    OpenAI's final usage-only chunk with ``"estimated": true``.
    """
    buf = b""
    saw_done = False
    try:
        async with aclosing(_pieces(opened, total_timeout)) as pieces:
            async for piece in pieces:
                buf += piece
                if b"\r\n" in buf:
                    buf = buf.replace(b"\r\n", b"\n")
                if b"\n\n" not in buf:
                    continue
                *blocks, buf = buf.split(b"\n\n")
                outs, done, fault = _translate(blocks, served, client_wants_usage, result)
                saw_done = saw_done or done
                if outs:  # the events of one upstream read leave in one write (one ASGI send, one syscall)
                    if result.first_byte_at is None:
                        result.first_byte_at = time.perf_counter()
                    yield redact_bytes(outs[0] if len(outs) == 1 else b"".join(outs))
                if fault is not None:
                    raise fault
        async for out in _finish(buf, saw_done, served, client_wants_usage, result, estimate_usage):
            yield out
    except _StreamFault as fault:
        result.error = fault.kind
        yield error_event(fault.message, code=fault.code)
    except TransportError:
        result.error = "midstream_disconnected"
        yield error_event(
            "The upstream stream failed after it started (disconnected); the response is incomplete.",
            code="upstream_disconnected",
        )
    finally:
        await opened.aclose()


async def _pieces(opened: Opened, total_timeout: float) -> AsyncGenerator[bytes, None]:
    """The upstream's raw reads (the one read while opening first) until it closes, within the
    stream's total and idle timeouts."""
    deadline = time.monotonic() + total_timeout
    idle = opened.client.cfg.timeouts.idle
    if opened.first_chunk:
        yield opened.first_chunk
    next_chunk = opened.response.next_chunk  # type: ignore[union-attr]
    while True:
        if time.monotonic() > deadline:
            raise _StreamFault(
                "midstream_timeout",
                "upstream_timeout",
                f"The upstream stream exceeded its total timeout of {total_timeout:g}s; the response is incomplete.",
            )
        try:
            piece = await next_chunk()
        except asyncio.TimeoutError:
            raise _StreamFault(
                "midstream_idle_timeout",
                "upstream_idle_timeout",
                f"The upstream sent nothing for {idle:g}s (the idle timeout) after it started; "
                "the response is incomplete.",
            ) from None
        if not piece:
            return
        yield piece


def _translate(
    blocks: list[bytes], served: str, wants_usage: bool, result: StreamResult
) -> tuple[list[bytes], bool, _StreamFault | None]:
    """The client's events for one read's complete SSE blocks, whether ``[DONE]`` was among them
    (held back: a usage chunk may have to go first), and the fault that ended them, if any (the
    events before it still go out)."""
    outs: list[bytes] = []
    done = False
    for block in blocks:
        try:
            out = _process(block, served, wants_usage, result)
        except _StreamFault as exc:
            return outs, done, exc
        if out is DONE:
            done = True
        elif out is not None:
            outs.append(out)
    return outs, done, None


async def _finish(
    buf: bytes,
    saw_done: bool,
    served: str,
    wants_usage: bool,
    result: StreamResult,
    estimate_usage: Callable[[str], dict] | None,
) -> AsyncGenerator[bytes, None]:
    """After the upstream closed: its last unterminated event, then either the incomplete-stream
    error or the (estimated) usage chunk and ``[DONE]``."""
    if buf.strip():
        out = _process(buf, served, wants_usage, result)
        if out is DONE:
            saw_done = True
        elif out:
            yield redact_bytes(out)
    if result.finish_reason is None and not saw_done:
        result.error = "upstream closed the stream before finishing"
        yield error_event(
            "The upstream closed the stream before the response was complete.", code="upstream_incomplete"
        )
        return
    if result.usage is None and estimate_usage is not None:
        result.usage = {**estimate_usage("".join(result.content)), "estimated": True}
        if wants_usage:
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


def _process(block: bytes, served: str, wants_usage: bool, result: StreamResult) -> bytes | None:
    data = b"".join(line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:"))
    if not data:
        return None
    if data.strip() == b"[DONE]":
        return DONE
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _StreamFault(
            "midstream_bad_chunk",
            "upstream_bad_response",
            "The upstream sent a stream event that is not JSON; the response is incomplete.",
        ) from None
    if isinstance(obj, dict) and "error" in obj:
        err = obj["error"]
        text = err.get("message") if isinstance(err, dict) else err
        raise _StreamFault(
            "midstream_upstream_error",
            "upstream_error",
            "The upstream reported an error after it started: " + redact(str(text or "no message"))[:500],
        )
    why = chunk_problem(obj)
    if why is not None:
        raise _StreamFault(
            "midstream_bad_chunk",
            "upstream_bad_response",
            f"The upstream sent a stream event that is not an OpenAI completion chunk ({why}); "
            "the response is incomplete.",
        )
    if result.chunk_id is None:
        result.chunk_id, result.object, result.created = obj.get("id"), obj.get("object"), obj.get("created")
    if "model" in obj:
        obj["model"] = served
    usage = obj.get("usage")
    if usage:
        result.usage = usage
    choices = obj.get("choices") or []
    for ch in choices:
        if ch.get("finish_reason"):
            result.finish_reason = ch["finish_reason"]
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
