"""Redis Streams outcome store: every replica ``XADD``s to one stream; one trainer reads it.

Keys (``prefix`` default ``shunter:``):

- ``outcomes`` stream: one entry per request, fields ``o`` (the record as JSON, embedding left
  out) and ``e`` (the float16 embedding bytes); trimmed with ``XADD MAXLEN ~ maxlen``;
- ``outcome:<request_id>``: the stream entry id, so feedback can find the record (expires
  after ``index_ttl`` seconds);
- ``feedback:<request_id>``: hash ``source -> item JSON`` (idempotent by (request_id, source));
- ``feedback`` stream: every feedback item, for the trainer;
- ``spend`` stream: every shadow and judge call's cost (``Spend``), for ``shunter report``.

:class:`StreamReader` reads the streams through a consumer group (several replicas, one
trainer; a crashed trainer re-reads its unacknowledged entries) into a local SQLite store.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import orjson

from gateway.outcomes.record import Feedback, Outcome, Spend

OUTCOMES = "outcomes"
FEEDBACK = "feedback"
SPEND = "spend"


def _sync_client(url: str, options: Any = None, **kw: Any):
    import redis

    if options is None:
        return redis.Redis.from_url(url, decode_responses=False, **kw)
    from gateway.state import client_options

    return redis.Redis.from_url(url, decode_responses=False, **client_options(options, for_asyncio=False))


def encode(o: Outcome) -> dict[bytes, bytes]:
    fields = {b"o": orjson.dumps(o.model_dump(exclude={"embedding"}))}
    if o.embedding:
        fields[b"e"] = o.embedding
    return fields


def decode(fields: dict[bytes, bytes]) -> Outcome:
    d = orjson.loads(fields[b"o"])
    d["embedding"] = fields.get(b"e")
    return Outcome.model_validate(d)


class RedisStreamStore:
    """The outcome store when ``server.redis_url`` is set (same interface as ``SQLiteStore``)."""

    name = "redis"

    def __init__(
        self,
        url: str,
        maxlen: int = 1_000_000,
        prefix: str = "shunter:",
        index_ttl: float = 30 * 86400,
        options: Any = None,
    ) -> None:
        self.url = url
        self.r = _sync_client(url, options)  # options: server.redis (short timeouts, one reconnect)
        self.maxlen = maxlen
        self.prefix = prefix
        self.index_ttl = int(index_ttl)

    def k(self, key: str) -> str:
        return self.prefix + key

    def write_batch(self, rows: list[Outcome]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for o in rows:
            pipe.xadd(self.k(OUTCOMES), encode(o), maxlen=self.maxlen, approximate=True)
        ids = pipe.execute()
        pipe = self.r.pipeline(transaction=False)
        for o, sid in zip(rows, ids):
            pipe.set(self.k(f"outcome:{o.request_id}"), sid, ex=self.index_ttl)
        pipe.execute()

    def exists(self, request_id: str) -> bool:
        return bool(self.r.exists(self.k(f"outcome:{request_id}")))

    def get(self, request_id: str) -> Outcome | None:
        sid = self.r.get(self.k(f"outcome:{request_id}"))
        if sid is None:
            return None
        got = self.r.xrange(self.k(OUTCOMES), sid, sid)
        return decode(got[0][1]) if got else None

    def count(self) -> int:
        return int(self.r.xlen(self.k(OUTCOMES)))

    def add_feedback(self, fb: Feedback) -> bool:
        data = orjson.dumps(fb.model_dump())
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.k(f"feedback:{fb.request_id}"), fb.source, data)
        pipe.expire(self.k(f"feedback:{fb.request_id}"), self.index_ttl)
        pipe.xadd(self.k(FEEDBACK), {b"f": data}, maxlen=self.maxlen, approximate=True)
        new, _, _ = pipe.execute()
        return bool(new)

    def add_spend(self, item: Spend) -> None:
        self.r.xadd(self.k(SPEND), {b"s": orjson.dumps(item.model_dump())}, maxlen=self.maxlen, approximate=True)

    def feedback(self, request_id: str) -> list[Feedback]:
        items = self.r.hgetall(self.k(f"feedback:{request_id}"))
        return sorted((Feedback.model_validate(orjson.loads(v)) for v in items.values()), key=lambda f: f.source)

    def close(self) -> None:
        self.r.close()


class StreamUnavailable(RuntimeError):
    """Redis could not be reached to read the streams (the message names it without credentials)."""


def where(url: str) -> str:
    """``host:port/db`` of a Redis URL: what an error may show (no user name or password)."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return f"{u.hostname or 'localhost'}:{u.port or 6379}{u.path or '/0'}"


class StreamReader:
    """Consumer-group reader of the outcome and feedback streams into a sink (a ``SQLiteStore``).

    It connects when made (before anything is written), and raises ``StreamUnavailable`` when Redis
    cannot be reached within ``connect_timeout`` seconds.
    """

    def __init__(
        self,
        url: str,
        sink: Any,
        group: str = "trainer",
        consumer: str | None = None,
        prefix: str = "shunter:",
        connect_timeout: float = 5.0,
    ) -> None:
        import redis

        self.r: Any = _sync_client(url, socket_connect_timeout=connect_timeout)
        self.sink = sink
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.prefix = prefix
        for s in (OUTCOMES, FEEDBACK, SPEND):
            try:
                self.r.xgroup_create(self.prefix + s, group, id="0", mkstream=True)
            except (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError) as exc:
                self.r.close()
                msg = str(exc).split(". ")[-1].strip(". ") or type(exc).__name__
                raise StreamUnavailable(f"Redis at {where(url)} is unreachable ({msg})") from None
            except redis.ResponseError as exc:  # BUSYGROUP: the group exists already
                if "BUSYGROUP" not in str(exc):
                    raise

    def _read(self, stream: str, start: str, count: int) -> list[tuple[bytes, dict]]:
        got = self.r.xreadgroup(self.group, self.consumer, {self.prefix + stream: start}, count=count)
        return [e for _, entries in got or [] for e in entries]

    def pull(self, count: int = 1000) -> dict[str, int]:
        """Copy everything not yet acknowledged by this group into the sink; returns counts."""
        done = {OUTCOMES: 0, FEEDBACK: 0, SPEND: 0}
        for stream in (OUTCOMES, FEEDBACK, SPEND):  # outcomes first, so feedback finds its record
            for start in ("0", ">"):  # this consumer's unacknowledged entries, then new ones
                while True:
                    entries = self._read(stream, start, count)
                    if not entries:
                        break
                    live = [f for _, f in entries if f]  # a trimmed entry comes back without fields
                    if stream == OUTCOMES:
                        self.sink.write_batch([decode(f) for f in live])
                    elif stream == SPEND:
                        self.sink.write_spend_batch([Spend.model_validate(orjson.loads(f[b"s"])) for f in live])
                    else:
                        self.sink.write_feedback_batch([Feedback.model_validate(orjson.loads(f[b"f"])) for f in live])
                    self.r.xack(self.prefix + stream, self.group, *[i for i, _ in entries])
                    done[stream] += len(entries)
        return done

    def close(self) -> None:
        self.r.close()
