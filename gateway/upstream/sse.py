"""Server-sent events: the small amount of framing the gateway needs."""

from __future__ import annotations

import orjson

DONE = b"data: [DONE]\n\n"


def event(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def error_event(message: str, type_: str = "upstream_error", code: str | None = None) -> bytes:
    return event({"error": {"message": message, "type": type_, "param": None, "code": code}})
