"""Server-sent event framing with event names, and an incremental parser for upstream streams."""

from __future__ import annotations

from dataclasses import dataclass

import orjson


def named(event: str, obj: dict) -> bytes:
    """One SSE event with an ``event:`` line (Responses and Anthropic streams name every event)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def typed(obj: dict) -> bytes:
    """An event named after its own ``type`` field."""
    return named(obj["type"], obj)


@dataclass
class Event:
    event: str | None
    data: str


class Parser:
    """Feed bytes as they arrive; get whole events back (CRLF tolerated, comments skipped)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Event]:
        self._buf += chunk
        if b"\r" in self._buf:
            self._buf = self._buf.replace(b"\r\n", b"\n")
        if b"\n\n" not in self._buf:
            return []
        *blocks, self._buf = self._buf.split(b"\n\n")
        return [e for e in map(_parse, blocks) if e is not None]

    def close(self) -> list[Event]:
        """Whatever is left when the stream ends without a blank line."""
        rest, self._buf = self._buf, b""
        e = _parse(rest) if rest.strip() else None
        return [e] if e is not None else []


def _parse(block: bytes) -> Event | None:
    name: str | None = None
    data: list[str] = []
    for line in block.decode("utf-8", errors="replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if name is None and not data:
        return None
    return Event(name, "\n".join(data))
