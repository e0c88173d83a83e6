"""Outcome records through a running gateway: graceful shutdown, a full queue, feedback, Redis Streams."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

import httpx
import openai

from gateway.outcomes.sqlite import SQLiteStore
from tests.support.procs import upstream_entry
from tests.support.wait import await_until, wait_until


def cfg_two(cheap, strong, **server) -> dict:
    return {
        "server": dict(server),
        "upstreams": {
            "cheap": upstream_entry(cheap, input_price=0.15, output_price=0.6),
            "strong": upstream_entry(strong, input_price=2.5, output_price=10.0),
        },
        "policies": {"chat": {"candidates": ["cheap", "strong"], "objective": {"threshold": 0.5}}},
    }


def metric(gw, name: str, **labels) -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def ids_in(db) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT request_id FROM outcomes")}
    finally:
        conn.close()


def test_sigterm_mid_load_every_200_has_its_record(gateway, fake_upstream, tmp_path):
    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    cheap.control(delay=0.4, chunk_delay=0.1)  # requests stay in flight while SIGTERM arrives
    db = tmp_path / "shutdown.sqlite"
    gw = gateway(cfg_two(cheap, strong, outcomes_path=str(db)))
    ok: set[str] = set()
    failed: list[str] = []

    async def one(c: openai.AsyncOpenAI, i: int) -> None:
        try:
            if i % 2:
                raw = await c.chat.completions.with_raw_response.create(
                    model="router-chat", messages=[{"role": "user", "content": f"plain {i}"}]
                )
                raw.parse()
            else:
                raw = await c.chat.completions.with_raw_response.create(
                    model="router-chat", messages=[{"role": "user", "content": f"stream {i} a b c d"}], stream=True
                )
                async for _ in raw.parse():
                    pass
            if raw.status_code == 200:
                ok.add(raw.headers["x-shunter-request-id"])
        except (openai.APIConnectionError, openai.APIStatusError, httpx.HTTPError) as exc:
            failed.append(type(exc).__name__)

    async def load() -> None:
        c = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0, timeout=30)
        tasks = [asyncio.create_task(one(c, i)) for i in range(30)]

        async def upstreams_busy() -> bool:  # the fakes have received most of them: they are in flight
            got = await asyncio.to_thread(lambda: cheap.stats()["requests"] + strong.stats()["requests"])
            return got >= 20

        await await_until(upstreams_busy, 30, 0.02, "requests in flight")
        gw.proc.send_signal(signal.SIGTERM)  # mid-load
        tasks += [asyncio.create_task(one(c, i)) for i in range(30, 60)]
        await asyncio.gather(*tasks)
        await c.close()

    asyncio.run(load())
    assert gw.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    assert len(ok) >= 25, (len(ok), failed)
    missing = ok - ids_in(db)
    assert not missing, f"{len(missing)} of {len(ok)} successful responses have no outcome record"
    log = gw.output()
    assert log.index("Waiting for connections to close") < log.index("Waiting for application shutdown")


def test_full_queue_drops_are_counted_and_logged_requests_still_succeed(gateway, fake_upstream, tmp_path):
    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    db = tmp_path / "slow.sqlite"
    gw = gateway(cfg_two(cheap, strong, outcomes_path=str(db), outcome_queue_size=2))
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    warm = c.chat.completions.with_raw_response.create(
        model="router-chat", messages=[{"role": "user", "content": "warm"}]
    )
    warm_id = warm.headers["x-shunter-request-id"]
    wait_until(lambda: warm_id in ids_in(db), 10, 0.05, "the warm-up record is written")  # the writer is idle
    # A slow store: another connection holds the write lock, so the writer thread blocks on it.
    lock = sqlite3.connect(db, timeout=1, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        ids = []
        for i in range(20):
            raw = c.chat.completions.with_raw_response.create(
                model="router-chat", messages=[{"role": "user", "content": f"q {i}"}]
            )
            assert raw.status_code == 200 and raw.parse().choices[0].message.content == f"Echo: q {i}"
            ids.append(raw.headers["x-shunter-request-id"])
        dropped = metric(gw, "shunter_outcomes_dropped_total", store="sqlite")
        assert dropped >= 15  # one batch blocked in the writer, two queued, the rest dropped
        assert metric(gw, "shunter_outcome_queue_depth") == 2
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_until(lambda: metric(gw, "shunter_outcome_queue_depth") == 0, 10, 0.1, "the queue drains")
    kept = ids_in(db) & set(ids)
    assert len(kept) == 20 - dropped
    assert "outcome queue full (2): dropped record req_" in gw.output()


def test_feedback_joined_by_id_idempotent_and_404(gateway, fake_upstream, tmp_path):
    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    db = tmp_path / "fb.sqlite"
    gw = gateway(cfg_two(cheap, strong, outcomes_path=str(db)))
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="router-chat", messages=[{"role": "user", "content": "rate me"}]
    )
    rid = raw.headers["x-shunter-request-id"]
    h = httpx.Client(base_url=gw.url, timeout=10)
    # sent at once: the record may still be queued, the handler waits for it
    r = h.post("/v1/feedback", json={"request_id": rid, "score": 0.9, "label": "good", "comment": "nice"})
    assert r.status_code == 201, r.text
    assert r.json() | {} == {
        "object": "feedback",
        "request_id": rid,
        "source": "user",
        "score": 0.9,
        "created": True,
        "policy": "chat",
        "model": "cheap",
        "online_update": False,
    }
    again = h.post("/v1/feedback", json={"request_id": rid, "thumbs": "down"})
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["score"] == 0.0
    judge = h.post("/v1/feedback", json={"request_id": rid, "score": 1, "source": "judge"})
    assert judge.status_code == 201
    # streamed: feedback right after the last chunk
    chunks = c.chat.completions.with_raw_response.create(
        model="router-chat", messages=[{"role": "user", "content": "s"}], stream=True
    )
    srid = chunks.headers["x-shunter-request-id"]
    list(chunks.parse())
    assert h.post("/v1/feedback", json={"request_id": srid, "thumbs": "up"}).status_code == 201
    # errors, OpenAI style
    nf = h.post("/v1/feedback", json={"request_id": "req_doesnotexist", "score": 1})
    assert (
        nf.status_code == 404
        and nf.json()["error"]["code"] == "request_not_found"
        and nf.json()["error"]["param"] == "request_id"
    )
    assert h.post("/v1/feedback", json={"request_id": rid}).status_code == 400
    assert h.post("/v1/feedback", json={"request_id": rid, "score": 1.5}).json()["error"]["param"] == "score"
    assert h.post("/v1/feedback", json={"request_id": rid, "score": 1, "thumbs": "up"}).status_code == 400
    assert metric(gw, "shunter_feedback_total", source="user") == 3
    assert metric(gw, "shunter_feedback_total", source="judge") == 1
    s = SQLiteStore(db)
    assert [(f.source, f.score, f.label) for f in s.feedback(rid)] == [("judge", 1.0, None), ("user", 0.0, None)]
    assert s.get(srid).stream is True
    assert s.get(rid).route_cpu_s > 0  # the decide stage's CPU, priced by shunter report
    assert metric(gw, "shunter_routing_cpu_seconds_total", policy="chat") > 0


def test_rejected_request_is_recorded_with_its_id(gateway, fake_upstream, tmp_path):
    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    db = tmp_path / "rej.sqlite"
    cfg = cfg_two(cheap, strong, outcomes_path=str(db))
    cfg["policies"]["chat"]["allow_overrides"] = False
    gw = gateway(cfg)
    h = httpx.Client(base_url=gw.base_url, timeout=10)
    r = h.post("/chat/completions", json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404
    r2 = h.post(
        "/chat/completions",
        json={"model": "router-chat", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-shunter-threshold": "0.9"},
    )
    assert r2.status_code == 400
    s = SQLiteStore(db)
    o1 = wait_until(lambda: s.get(r.headers["x-shunter-request-id"]), 10, 0.05, "the 404's record")
    o2 = wait_until(lambda: s.get(r2.headers["x-shunter-request-id"]), 10, 0.05, "the 400's record")
    assert (o1.status, o1.error_type, o1.reason, o1.served) == (404, "model_not_found", "rejected", None)
    assert (o2.status, o2.error_type) == (400, "overrides_not_allowed")


def test_redis_store_feeds_trainer_through_consumer_group(gateway, fake_upstream, redis_server, tmp_path):
    import redis as redis_lib

    from gateway.outcomes.redis_stream import StreamReader

    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    r = redis_lib.Redis.from_url(redis_server)
    for k in r.scan_iter("shunter:*"):
        r.delete(k)
    cfg = cfg_two(cheap, strong, redis_url="os.environ/TEST_REDIS_URL", outcomes_path=str(tmp_path / "unused.sqlite"))
    gws = [gateway(cfg, env={"TEST_REDIS_URL": redis_server}) for _ in range(2)]  # two replicas
    ids = []
    for i in range(10):
        gw = gws[i % 2]
        raw = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0).chat.completions.with_raw_response.create(
            model="router-chat", messages=[{"role": "user", "content": f"r {i}"}]
        )
        ids.append(raw.headers["x-shunter-request-id"])
    # feedback on the other replica than the one that served it
    fb = httpx.post(f"{gws[1].url}/v1/feedback", json={"request_id": ids[0], "score": 1.0}, timeout=10)
    assert fb.status_code == 201, fb.text
    assert (
        httpx.post(f"{gws[0].url}/v1/feedback", json={"request_id": ids[0], "score": 1.0}, timeout=10).status_code
        == 200
    )
    assert r.xlen("shunter:outcomes") == 10 and r.exists(f"shunter:outcome:{ids[3]}")
    sink = SQLiteStore(tmp_path / "trainer.sqlite")
    got = StreamReader(redis_server, sink, group="trainer").pull()
    assert got == {"outcomes": 10, "feedback": 2, "spend": 0}
    assert ids_in(tmp_path / "trainer.sqlite") == set(ids)
    assert [(l.outcome.request_id, l.score) for l in sink.labelled("chat")] == [(ids[0], 1.0)]
    # the CLI: another group (another trainer) gets everything once, then nothing
    import json
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "gateway",
        "outcomes",
        "pull",
        "--redis",
        redis_server,
        "--db",
        str(tmp_path / "cli.sqlite"),
        "--group",
        "audit",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"outcomes": 10, "feedback": 2, "spend": 0}
    assert json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout) == {
        "outcomes": 0,
        "feedback": 0,
        "spend": 0,
    }
    assert ids_in(tmp_path / "cli.sqlite") == set(ids)
