"""The conversations behind ``previous_response_id``, kept in the shared state (Redis or in-process).

Each stored response holds its whole conversation as Responses items (earlier turns, this
request's input, this response's output), so a follow-up is expanded without walking a chain.
The store is bounded twice: every entry expires after ``ttl`` seconds, and a ring of ``size``
slots (one atomic counter) evicts the oldest entry when a new one takes its slot. An entry made
with a virtual key is only visible to requests made with the same key.
"""

from __future__ import annotations

import orjson

from gateway.state import SharedState

PREFIX = "resp:"


class ResponseStore:
    def __init__(self, state: SharedState, size: int, ttl: float) -> None:
        self.state = state
        self.size = size
        self.ttl = ttl

    async def get(self, response_id: str, key_id: str | None) -> list[dict] | None:
        raw = await self.state.get(PREFIX + response_id)
        if raw is None:
            return None
        entry = orjson.loads(raw)
        if entry.get("key") != key_id:
            return None  # another key's conversation: as unknown as a missing one
        return entry["items"]

    async def put(self, response_id: str, key_id: str | None, items: list[dict]) -> None:
        n = int(await self.state.incr(PREFIX + "seq"))
        slot = f"{PREFIX}slot:{n % self.size}"
        old = await self.state.get(slot)
        if old and old != response_id:
            await self.state.delete(PREFIX + old)
        await self.state.set(slot, response_id, self.ttl)
        await self.state.set(PREFIX + response_id, orjson.dumps({"key": key_id, "items": items}).decode(), self.ttl)
