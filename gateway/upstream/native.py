"""Relay a native upstream stream (the client's own format: Anthropic, Responses) event by event.

Same contract as ``upstream.relay.relay``: bytes for the client as they arrive, and the usage,
finish reason, first byte time and error in a ``StreamResult``. The ingress's ``reader`` parses
each piece (rewriting the model and ids) and says when the stream is complete; a stall, a reset
or a stream that ends before its final event ends with the reader's own error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from gateway.secrets import redact_bytes
from gateway.upstream.client import TransportError
from gateway.upstream.forward import Opened
from gateway.upstream.relay import StreamResult


async def relay_native(
    opened: Opened, reader: Any, total_timeout: float, result: StreamResult
) -> AsyncGenerator[bytes, None]:
    deadline = time.monotonic() + total_timeout
    try:
        pending = [opened.first_chunk] if opened.first_chunk else []
        while True:
            if pending:
                piece = pending.pop()
            else:
                if time.monotonic() > deadline:
                    raise asyncio.TimeoutError
                piece = await opened.response.next_chunk()  # type: ignore[union-attr]
            out = reader.feed(piece, final=not piece)
            if out:
                if result.first_byte_at is None:
                    result.first_byte_at = time.perf_counter()
                yield redact_bytes(out)
            if not piece or reader.done:
                break
        if reader.error:
            result.error = reader.error
        elif not reader.done:
            result.error = "upstream closed the stream before finishing"
            yield reader.failure("The upstream closed the stream before the response was complete.")
    except asyncio.TimeoutError:
        result.error = "midstream_timeout"
        yield reader.failure("The upstream stream stalled or ran past its timeout; the response is incomplete.")
    except TransportError:
        result.error = "midstream_disconnected"
        yield reader.failure("The upstream stream failed after it started (disconnected); the response is incomplete.")
    finally:
        result.usage = reader.chat_usage()
        result.finish_reason = reader.finish_reason
        await opened.aclose()
