"""Pick the outcome store from the server settings (one interface, two implementations)."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.outcomes.record import Feedback, Outcome, Spend


class Store(Protocol):
    """What the recorder, ``/v1/feedback`` and the online learner need from a store."""

    name: str

    def write_batch(self, rows: list[Outcome]) -> None: ...
    def exists(self, request_id: str) -> bool: ...
    def get(self, request_id: str) -> Outcome | None: ...
    def add_feedback(self, fb: Feedback) -> bool: ...
    def feedback(self, request_id: str) -> list[Feedback]: ...
    def count(self) -> int: ...
    def add_spend(self, item: Spend) -> None: ...
    def close(self) -> None: ...


def make_store(server: Any) -> Store:
    """``RedisStreamStore`` (with its local spill file) when ``server.redis_url`` resolves to a URL,
    else ``SQLiteStore``."""
    from gateway import secrets

    url = secrets.resolve(server.redis_url)
    if url:
        from gateway.outcomes.redis_stream import RedisStreamStore
        from gateway.outcomes.spill import SpillingStore, spill_path

        opts = getattr(server, "redis", None)
        primary = RedisStreamStore(url, maxlen=getattr(server, "outcome_stream_maxlen", 1_000_000), options=opts)
        if opts is None:
            return primary
        return SpillingStore(primary, spill_path(server), opts.down_for, opts.replay_every)
    from gateway.outcomes.sqlite import SQLiteStore

    return SQLiteStore(server.outcomes_path)
