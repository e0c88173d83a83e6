"""Both outcome stores through one interface: SQLite (a real file) and Redis Streams (a real redis-server)."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest
import redis

from gateway.outcomes.record import Feedback, Outcome, Spend
from gateway.outcomes.recorder import Recorder
from gateway.outcomes.redis_stream import RedisStreamStore, StreamReader, StreamUnavailable
from gateway.outcomes.sqlite import SQLiteStore


def outcome(i: int, policy: str = "chat", served: str = "cheap") -> Outcome:
    emb = np.random.default_rng(i).standard_normal(384).astype(np.float16).tobytes()
    return Outcome(
        request_id=f"req_{i}",
        ts=1000.0 + i,
        policy=policy,
        served=served,
        chosen=served,
        candidates=["cheap", "strong"],
        scores={"cheap": 0.4, "strong": 0.8},
        cost_usd=0.001 * i,
        attempts=[{"upstream": served, "status": 200}],
        embedding=emb,
    )


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path, redis_server):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "o.sqlite")
    else:
        prefix = f"t{time.monotonic_ns()}:"
        s = RedisStreamStore(redis_server, maxlen=1000, prefix=prefix)
    yield s
    try:
        s.close()
    except Exception:
        pass


def test_round_trip_and_feedback_idempotent(store):
    rows = [outcome(i) for i in range(5)]
    store.write_batch(rows)
    got = store.get("req_3")
    assert got == rows[3]  # every field, the float16 embedding bytes included
    assert store.exists("req_4") and not store.exists("req_nope") and store.get("req_nope") is None
    assert store.count() == 5
    fb = Feedback(request_id="req_3", source="user", score=1.0, ts=time.time())
    assert store.add_feedback(fb) is True
    assert store.add_feedback(fb.model_copy(update={"score": 0.0, "comment": "changed my mind"})) is False
    assert store.add_feedback(fb.model_copy(update={"source": "judge", "score": 0.5})) is True
    items = store.feedback("req_3")
    assert [(f.source, f.score) for f in items] == [("judge", 0.5), ("user", 0.0)]


def test_redis_stream_is_trimmed_with_maxlen(redis_server):
    s = RedisStreamStore(redis_server, maxlen=1000, prefix=f"trim{time.monotonic_ns()}:")
    for start in range(0, 5000, 500):
        s.write_batch([outcome(i) for i in range(start, start + 500)])
    n = s.count()
    assert 1000 <= n < 2500  # MAXLEN ~ trims by whole macro nodes
    s.close()


def test_consumer_group_several_replicas_one_trainer(tmp_path, redis_server):
    prefix = f"cg{time.monotonic_ns()}:"
    replicas = [RedisStreamStore(redis_server, prefix=prefix) for _ in range(3)]
    for r, rep in enumerate(replicas):
        rep.write_batch([outcome(100 * r + i, served=["cheap", "strong"][i % 2]) for i in range(20)])
    replicas[1].add_feedback(Feedback(request_id="req_105", source="user", score=1.0, ts=1.0))
    spent = Spend(request_id="req_105", policy="chat", kind="judge", model="strong", cost_usd=0.002, ts=1.0)
    replicas[2].add_spend(spent)
    sink = SQLiteStore(tmp_path / "trainer.sqlite")
    reader = StreamReader(redis_server, sink, group="trainer", consumer="t1", prefix=prefix)
    assert reader.pull() == {"outcomes": 60, "feedback": 1, "spend": 1}
    assert sink.spend("chat") == [spent]
    assert sink.count() == 60 and sink.get("req_219") == replicas[2].get("req_219")
    labelled = sink.labelled("chat")
    assert [(l.outcome.request_id, l.score) for l in labelled] == [("req_105", 1.0)]
    # only new entries next time; everything acknowledged
    replicas[0].write_batch([outcome(999)])
    assert reader.pull() == {"outcomes": 1, "feedback": 0, "spend": 0}
    r = redis.Redis.from_url(redis_server)
    assert r.xpending(prefix + "outcomes", "trainer")["pending"] == 0
    # a second trainer in the same group gets nothing twice
    other = StreamReader(
        redis_server, SQLiteStore(tmp_path / "other.sqlite"), group="trainer", consumer="t2", prefix=prefix
    )
    assert other.pull() == {"outcomes": 0, "feedback": 0, "spend": 0}
    for x in (reader, other, *replicas):
        x.close()


def test_unreachable_redis_is_one_error_without_credentials(tmp_path):
    """A trainer pointed at a Redis that is down gets ``StreamUnavailable`` naming host, port and
    db (never the password in the URL), before anything is written to its sink."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    url = f"redis://trainer:s3cret-pw@127.0.0.1:{port}/3"
    with pytest.raises(StreamUnavailable) as ei:
        StreamReader(url, None, group="trainer", connect_timeout=2)
    assert str(ei.value) == f"Redis at 127.0.0.1:{port}/3 is unreachable (Connection refused)"
    assert "s3cret" not in str(ei.value) and "trainer:" not in str(ei.value)


def test_crashed_trainer_rereads_unacknowledged(tmp_path, redis_server):
    prefix = f"crash{time.monotonic_ns()}:"
    rep = RedisStreamStore(redis_server, prefix=prefix)
    rep.write_batch([outcome(i) for i in range(10)])
    reader = StreamReader(redis_server, SQLiteStore(tmp_path / "a.sqlite"), group="g", consumer="c", prefix=prefix)
    reader.r.xreadgroup("g", "c", {prefix + "outcomes": ">"}, count=4)  # read, then "crash" before ack
    again = StreamReader(redis_server, SQLiteStore(tmp_path / "b.sqlite"), group="g", consumer="c", prefix=prefix)
    assert again.pull()["outcomes"] == 10
    assert again.sink.count() == 10


def test_recorder_flushes_on_stop_and_tracks_pending(tmp_path):
    async def run():
        store = SQLiteStore(tmp_path / "r.sqlite")
        rec = Recorder(store, queue_size=100, batch_size=7)
        await rec.start()
        for i in range(50):
            assert rec.submit(outcome(i))
        assert rec.pending("req_49")
        assert await rec.wait_written("req_49", 5)
        for i in range(50, 80):
            rec.submit(outcome(i))
        await rec.stop()
        return rec

    rec = asyncio.run(run())
    assert rec.written == 80 and rec.dropped == 0
    assert SQLiteStore(tmp_path / "r.sqlite").count() == 80


def test_labelled_filters_policy_time_and_source(tmp_path):
    s = SQLiteStore(tmp_path / "l.sqlite")
    s.write_batch([outcome(i, policy="chat" if i % 2 else "other") for i in range(10)])
    s.write_batch([outcome(20).model_copy(update={"status": 502, "served": None})])
    for i in (1, 2, 3, 5, 20):
        s.add_feedback(Feedback(request_id=f"req_{i}", source="user", score=1.0, ts=1))
    s.add_feedback(Feedback(request_id="req_5", source="judge", score=0.0, ts=1))
    got = s.labelled("chat", since=1002.0)
    assert [(l.outcome.request_id, l.score, l.n_feedback) for l in got] == [("req_3", 1.0, 1), ("req_5", 0.5, 2)]
    assert [l.outcome.request_id for l in s.labelled("chat", sources=["judge"])] == ["req_5"]
