"""Redis outages under load: a real ``redis-server`` is frozen (SIGSTOP) and stopped while clients
keep sending requests through a running gateway.

The policy (``server.redis.on_failure``) is the default: rpm fails open, budgets fail closed.
- a key with an rpm limit is served throughout; a budgeted key gets 503 with ``Retry-After``;
  no request ever gets a 500;
- a frozen Redis costs a request at most about the short socket timeout, not seconds;
- after Redis returns (stale pooled connections included) both keys are served again;
- outcome records written while Redis was away are spilled to a local SQLite file and replayed:
  every request id a client saw is in the Redis stream at the end, and the drop counter is 0.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.procs import free_port, upstream_entry
from tests.support.wait import wait_until

ADMIN = "outage-admin-key"


@dataclass
class RedisProc:
    """A redis-server of this test's own, with its data on disk (AOF) so a restart keeps the stream."""

    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            pytest.fail("redis-server is not installed (.ci/run installs it: apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir), "--save", ""]
            + ["--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._pings, 20, what="redis-server answers PING")

    def _pings(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()  # graceful: the AOF is complete
        self.proc.wait(20)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProc]:
    rp = RedisProc(free_port(), tmp_path / "redis")
    rp.workdir.mkdir()
    rp.start()
    yield rp
    if rp.proc is not None and rp.proc.poll() is None:
        rp.stop()


@dataclass
class Load:
    """Clients sending chat completions with two keys until stopped; every answer is kept."""

    url: str
    keys: dict[str, str]
    results: list[dict] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, per_key: int = 2) -> None:
        for name in self.keys:
            for _ in range(per_key):
                t = threading.Thread(target=self._run, args=(name,), daemon=True)
                t.start()
                self._threads.append(t)

    def _run(self, name: str) -> None:
        with httpx.Client(timeout=30) as c:
            i = 0
            while not self._stop.is_set():
                i += 1
                t0 = time.monotonic()
                try:
                    r = c.post(
                        f"{self.url}/v1/chat/completions",
                        json={"model": "router-p", "messages": [{"role": "user", "content": f"{name} {i}"}]},
                        headers={"authorization": f"Bearer {self.keys[name]}"},
                    )
                    rec = {
                        "key": name,
                        "status": r.status_code,
                        "code": r.json().get("error", {}).get("code") if r.status_code != 200 else None,
                        "retry_after": r.headers.get("retry-after"),
                        "id": r.headers.get("x-shunter-request-id"),
                    }
                except httpx.HTTPError as exc:
                    rec = {"key": name, "status": None, "code": repr(exc), "retry_after": None, "id": None}
                rec["t0"], rec["seconds"] = t0, time.monotonic() - t0
                self.results.append(rec)

    def wait_for(self, n: int, since: int, timeout: float = 60.0) -> list[dict]:
        """Poll until ``n`` more answers have arrived after index ``since``; return them."""
        wait_until(lambda: len(self.results) - since >= n, timeout, what=f"{n} answers")
        return self.results[since:]

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def _metric(gw, name: str) -> float:
    text = httpx.get(f"{gw.url}/metrics", headers={"x-admin-key": ADMIN}, timeout=5).text
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_redis_frozen_and_stopped_under_load(gateway, fake_upstream, own_redis, tmp_path):
    fake = fake_upstream("m-v1")
    cfg = {
        "server": {
            "redis_url": own_redis.url,
            "auth": True,
            "admin_key": "os.environ/SHUNTER_ADMIN_KEY",
            "redis": {"down_for": 0.5},
        },
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake)},
        "policies": {"p": {"candidates": ["a", "b"]}},
    }
    gw = gateway(cfg, env={"SHUNTER_ADMIN_KEY": ADMIN})
    keys = {}
    for name, spec in (("rpm", {"rpm": 100_000}), ("budget", {"budget_usd": 100.0})):
        r = httpx.post(f"{gw.url}/admin/keys", json=spec, headers={"x-admin-key": ADMIN}, timeout=10)
        assert r.status_code == 201, r.text
        keys[name] = r.json()["key"]
    load = Load(gw.url, keys)
    load.start()
    try:
        steady = load.wait_for(20, 0)
        assert {r["status"] for r in steady} == {200}, steady[:3]

        mark = len(load.results)
        own_redis.freeze()
        frozen = load.wait_for(40, mark)
        own_redis.thaw()
        mark = len(load.results)
        load.wait_for(10, mark)

        mark = len(load.results)
        own_redis.stop()
        stopped = load.wait_for(40, mark)
        own_redis.start()
        mark = len(load.results)
        wait_until(lambda: _metric(gw, "shunter_redis_up") == 1.0, 30, what="the gateway sees Redis back")
        back = load.wait_for(40, len(load.results))
    finally:
        load.stop()

    everything = load.results
    assert not [r for r in everything if r["status"] is None or (r["status"] >= 500 and r["status"] != 503)]
    for phase in (frozen, stopped):
        by_key = {k: [r for r in phase if r["key"] == k] for k in keys}
        assert {r["status"] for r in by_key["rpm"]} == {200}, "rpm fails open"
        refused = [r for r in by_key["budget"] if r["status"] == 503]
        assert refused, "the budget fails closed while Redis is away"
        assert {(r["code"], r["retry_after"]) for r in refused} == {("limits_unavailable", "2")}
    # a frozen Redis costs a request about the socket timeout (0.5 s), never the ~5 s it used to
    assert max(r["seconds"] for r in frozen) < 2.0, sorted(r["seconds"] for r in frozen)[-5:]
    assert {r["status"] for r in back[-20:]} == {200}, "both keys are served once Redis is back"

    # every answer a client saw has its record in the stream: spilled while away, replayed after
    ids = {r["id"] for r in everything if r["id"]}
    r = redis.Redis.from_url(own_redis.url)

    def stream_ids() -> set[str]:
        import orjson

        return {orjson.loads(f[b"o"])["request_id"] for _, f in r.xrange("shunter:outcomes")}

    wait_until(lambda: ids <= stream_ids(), 30, what="every record a client saw reaches the stream")
    assert _metric(gw, "shunter_outcomes_spilled_total") > 0
    assert _metric(gw, "shunter_outcomes_replayed_total") == _metric(gw, "shunter_outcomes_spilled_total")
    assert _metric(gw, "shunter_outcomes_dropped_total") == 0
    spill = tmp_path / "outcomes-spill.sqlite"
    assert spill.exists()


def test_redis_down_with_rpm_failing_closed_is_a_503_never_a_500(gateway, fake_upstream, own_redis):
    fake = fake_upstream("m-v1")
    cfg = {
        "server": {
            "redis_url": own_redis.url,
            "auth": True,
            "admin_key": "os.environ/SHUNTER_ADMIN_KEY",
            "redis": {"on_failure": {"rpm": "fail_closed"}, "retry_after": 3},
        },
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake)},
        "policies": {"p": {"candidates": ["a", "b"]}},
    }
    gw = gateway(cfg, env={"SHUNTER_ADMIN_KEY": ADMIN})
    r = httpx.post(f"{gw.url}/admin/keys", json={"rpm": 1000}, headers={"x-admin-key": ADMIN}, timeout=10)
    key = r.json()["key"]
    body = {"model": "router-p", "messages": [{"role": "user", "content": "hi"}]}
    hdrs = {"authorization": f"Bearer {key}"}
    first = httpx.post(f"{gw.base_url}/chat/completions", json=body, headers=hdrs, timeout=10)
    assert first.status_code == 200
    rid = first.headers["x-shunter-request-id"]
    own_redis.stop()
    fb = httpx.post(
        f"{gw.base_url}/feedback", json={"request_id": rid, "score": 1.0}, headers={"x-admin-key": ADMIN}, timeout=10
    )
    assert (fb.status_code, fb.json()["error"]["code"], fb.headers.get("retry-after")) == (
        503,
        "store_unavailable",
        "2",
    ), fb.text
    codes = []
    for _ in range(5):
        resp = httpx.post(f"{gw.base_url}/chat/completions", json=body, headers=hdrs, timeout=10)
        codes.append((resp.status_code, resp.headers.get("retry-after"), resp.json()["error"]["code"]))
    assert set(codes) == {(503, "3", "limits_unavailable")}
    # a key this node has never seen cannot be checked against the Redis mirror: 503, not 401
    resp = httpx.post(f"{gw.base_url}/chat/completions", json=body, headers={"authorization": "Bearer sk-sy-x-y"})
    assert resp.status_code == 503 and resp.headers["retry-after"] == "3"
    # the CLI cannot mirror a new key either: it says so and keeps no half-created key
    cli = [sys.executable, "-m", "gateway", "keys"]
    made = subprocess.run([*cli, "create", "--config", str(gw.config), "--rpm", "5"], capture_output=True, text=True)
    assert made.returncode == 1 and "Redis unreachable" in made.stderr, made.stderr
    listed = subprocess.run([*cli, "list", "--config", str(gw.config)], capture_output=True, text=True).stdout
    assert sum('"revoked": null' in line for line in listed.splitlines()) == 1, listed
    own_redis.start()
    wait_until(
        lambda: httpx.post(f"{gw.base_url}/chat/completions", json=body, headers=hdrs, timeout=10).status_code == 200,
        30,
        what="requests served again after Redis returned",
    )
    assert httpx.post(f"{gw.base_url}/chat/completions", json=body, headers=hdrs, timeout=10).status_code == 200
