"""Chaos run: load at fixed concurrency against a gateway whose primary upstream misbehaves.

Starts two fake upstreams (``tests/fakes/fake_upstream.py``) and ``shunter serve``: the
``primary`` fake injects faults at random (500, 429, a hang past the first-byte timeout, a failure
before the first byte, a stream that dies after its first chunk; with ``--body-chaos`` also
malformed 200s and bodies reset half way: ``non_json``, ``json_list``, ``wrong_choices``,
``string_usage``, ``reset_mid_body``, and for streams ``bad_chunk``, ``non_json_chunk``), the
``backup`` fake is healthy and is the policy's second candidate. With ``--redis-outage`` the
gateway keeps its shared state and outcome stream in a ``redis-server`` of its own, serves a
virtual key with an rpm limit, and Redis is frozen (SIGSTOP) for a fifth of the requests, then
stopped and restarted for another fifth. Then ``--requests`` chat completions (half streamed) are
sent with ``--concurrency`` in flight, and every answer is classified:

- ``ok``: 200 and a complete body (JSON with choices, or an SSE stream ending in ``[DONE]``);
- ``failed_before_first_byte``: a non-200 status or a connection error — must be 0, because
  every fault before the first byte is retried or falls back to the healthy candidate;
- ``midstream_clean_error``: a stream that ended with an OpenAI-style error event — expected,
  at most once per injected ``midstream`` fault on a streamed request;
- ``unclean``: anything else (a stream cut without an error event, bad JSON) — must be 0.

After the load the gateway is stopped gracefully and its outcome store is checked: one record
per request id the client saw (``records_lost``) and ``PRAGMA integrity_check`` (with Redis: the
stream, plus anything still in the local spill file).

    python bench/chaos.py --requests 1000 --concurrency 16 --out bench/results/chaos.json
    python bench/chaos.py --requests 400 --body-chaos '{"non_json": 0.03, "reset_mid_body": 0.03}' --redis-outage
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

from bench.procs import FAKE, ROOT, free_port, wait_ready

DEFAULT_CHAOS = {"500": 0.08, "429": 0.05, "timeout": 0.03, "reset": 0.05, "midstream": 0.06}
BODY_CHAOS = {
    "non_json": 0.02,
    "json_list": 0.01,
    "wrong_choices": 0.01,
    "string_usage": 0.01,
    "reset_mid_body": 0.03,
    "bad_chunk": 0.01,
    "non_json_chunk": 0.01,
}
ADMIN = "chaos-admin-key"


def _fake(model: str, seed: int, log) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", str(port), "--model-id", model, "--seed", str(seed)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_ready(f"http://127.0.0.1:{port}/v1/models", proc, 30)
    return proc, port


def _config(workdir: Path, primary: int, backup: int, breaker: bool, redis_url: str | None = None) -> Path:
    def up(port: int, model: str) -> dict:
        return {
            "base_url": f"http://127.0.0.1:{port}/v1",
            "model": model,
            "input_price": 0.15,
            "output_price": 0.6,
            "timeouts": {"connect": 1, "first_byte": 1.0, "total": 30, "idle": 2},
            "retry": {"attempts": 2, "backoff": 0.01, "max_backoff": 0.5},
            **({} if breaker else {"breaker": {"consecutive_failures": 1_000_000, "min_calls": 1_000_000}}),
        }

    server: dict = {"outcomes_path": str(workdir / "outcomes.sqlite")}
    if redis_url:
        server.update(redis_url=redis_url, auth=True, admin_key="os.environ/SHUNTER_ADMIN_KEY")
    cfg = {
        "server": server,
        "upstreams": {"primary": up(primary, "primary-model"), "backup": up(backup, "backup-model")},
        "policies": {"chat": {"candidates": ["primary", "backup"]}},
    }
    path = workdir / "chaos.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


async def _one(client: httpx.AsyncClient, url: str, i: int, stream: bool) -> dict:
    """One request, classified (see the module docstring)."""
    body = {
        "model": "router-chat",
        "messages": [{"role": "user", "content": f"chaos request {i} with a few words"}],
        "stream": stream,
    }
    rec: dict = {"i": i, "stream": stream, "id": None}
    try:
        if not stream:
            r = await client.post(url, json=body)
            rec["id"] = r.headers.get("x-shunter-request-id")
            if r.status_code != 200:
                return {**rec, "class": "failed_before_first_byte", "status": r.status_code, "detail": r.text[:200]}
            ok = bool(r.json().get("choices"))
            return {**rec, "class": "ok" if ok else "unclean", "status": 200}
        async with client.stream("POST", url, json=body) as r:
            rec["id"] = r.headers.get("x-shunter-request-id")
            if r.status_code != 200:
                await r.aread()
                return {**rec, "class": "failed_before_first_byte", "status": r.status_code, "detail": r.text[:200]}
            events = [ln[6:] async for ln in r.aiter_lines() if ln.startswith("data: ")]
    except httpx.HTTPError as exc:
        started = rec["id"] is not None
        return {
            **rec,
            "class": "unclean" if started else "failed_before_first_byte",
            "status": None,
            "detail": repr(exc),
        }
    if events and events[-1] == "[DONE]":
        return {**rec, "class": "ok", "status": 200}
    if events and '"error"' in events[-1]:
        return {**rec, "class": "midstream_clean_error", "status": 200, "detail": events[-1][:200]}
    return {**rec, "class": "unclean", "status": 200, "detail": (events or ["<no events>"])[-1][:200]}


async def load(
    base: str, n: int, concurrency: int, stream_share: float, seed: int, key: str | None = None, out: list | None = None
) -> list[dict]:
    rnd = random.Random(seed)
    plan = [rnd.random() < stream_share for _ in range(n)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    out = [] if out is None else out
    # keepalive_expiry under the gateway's keep-alive timeout (5 s): a client that reuses a connection the
    # server is closing at that moment gets a ReadError, which is the client's race, not a gateway failure
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                out.append(await _one(client, f"{base}/v1/chat/completions", i, plan[i]))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


class _Redis:
    """A redis-server for the gateway, with its data on disk (AOF) so a restart keeps the stream."""

    def __init__(self, workdir: Path, log) -> None:
        self.port, self.dir, self.log = free_port(), workdir / "redis", log
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.events: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", *args], stdout=self.log)
        import redis

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(20)

    def drive(self, results: list, total: int, stop: threading.Event) -> None:
        """Freeze at 20% of the answers, thaw at 40%, stop at 55%, start again at 75%."""
        steps = [
            (0.20, "freeze", lambda: self.signal(signal.SIGSTOP)),
            (0.40, "thaw", lambda: self.signal(signal.SIGCONT)),
            (0.55, "stop", self.stop),
            (0.75, "start", self.start),
        ]
        for share, name, act in steps:
            while len(results) < share * total and not stop.is_set():
                time.sleep(0.02)
            if stop.is_set():
                return
            act()
            self.events.append(f"{name} at {len(results)} answers")

    def records(self) -> set[str]:
        import orjson
        import redis

        r = redis.Redis(port=self.port)
        try:
            return {orjson.loads(f[b"o"])["request_id"] for _, f in r.xrange("shunter:outcomes")}
        finally:
            r.close()


def _key(base: str) -> str:
    r = httpx.post(f"{base}/admin/keys", json={"name": "chaos", "rpm": 1_000_000}, headers={"x-admin-key": ADMIN})
    r.raise_for_status()
    return r.json()["key"]


def run(
    requests: int = 400,
    concurrency: int = 8,
    chaos: dict | None = None,
    stream_share: float = 0.5,
    breaker: bool = False,
    seed: int = 0,
    retry_after: float | None = 0.2,
    workdir: Path | None = None,
    body_chaos: dict | None = None,
    redis_outage: bool = False,
) -> dict:
    """Run one chaos experiment and return its report (see the module docstring)."""
    chaos = DEFAULT_CHAOS if chaos is None else chaos
    workdir = Path(workdir or tempfile.mkdtemp(prefix="shunter-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "processes.log", "wb")
    procs: list[subprocess.Popen] = []
    red = _Redis(workdir, log) if redis_outage else None
    try:
        p_proc, p_port = _fake("primary-model", seed, log)
        b_proc, b_port = _fake("backup-model", seed + 1, log)
        procs += [p_proc, b_proc]
        if red is not None:
            red.start()
        cfg = _config(workdir, p_port, b_port, breaker, red.url if red else None)
        port = free_port()
        gw_log = open(workdir / "gateway.log", "wb")
        gw = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(cfg), "--port", str(port), "--no-watch"],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "SHUNTER_ADMIN_KEY": ADMIN},
            stdout=gw_log,
            stderr=subprocess.STDOUT,
        )
        procs.append(gw)
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", gw)
        control = {"chaos": chaos, "retry_after": retry_after, "body_chaos": body_chaos or {}}
        httpx.post(f"http://127.0.0.1:{p_port}/_control", json=control, timeout=5)
        key = _key(base) if red is not None else None
        results: list[dict] = []
        stop = threading.Event()
        driver = threading.Thread(target=red.drive, args=(results, requests, stop)) if red else None
        if driver:
            driver.start()
        t0 = time.perf_counter()
        try:
            asyncio.run(load(base, requests, concurrency, stream_share, seed, key, results))
        finally:
            stop.set()
            if driver:
                driver.join()
        elapsed = time.perf_counter() - t0
        stats = {
            name: httpx.get(f"http://127.0.0.1:{p}/_stats", timeout=5).json()
            for name, p in (("primary", p_port), ("backup", b_port))
        }
        if red is not None:
            _wait_replayed(base, 30)
        gw.send_signal(signal.SIGTERM)  # graceful: the recorder flushes its queue
        gw.wait(60)
        found, integrity = _records(workdir, red)
        rep = _report(results, stats, found, integrity, elapsed, requests, concurrency, chaos, breaker, stream_share)
        rep["body_chaos"] = body_chaos or {}
        if red is not None:
            rep["redis_outage"] = red.events
        return rep
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if red is not None:
            red.stop()


def _wait_replayed(base: str, timeout: float) -> None:
    """Until Redis is back for the gateway and its spill file is replayed (spilled == replayed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(f"{base}/metrics", headers={"x-admin-key": ADMIN}, timeout=5).text
        vals = {}
        for name in ("shunter_redis_up", "shunter_outcomes_spilled_total", "shunter_outcomes_replayed_total"):
            for line in text.splitlines():
                if line.startswith(name + " "):
                    vals[name] = float(line.split()[-1])
        if vals.get("shunter_redis_up") == 1.0 and vals.get("shunter_outcomes_spilled_total") == vals.get(
            "shunter_outcomes_replayed_total"
        ):
            return
        time.sleep(0.2)


def _records(workdir: Path, red: _Redis | None) -> tuple[set[str], str]:
    """(request ids the outcome store holds, SQLite integrity of the local file)."""
    db = workdir / ("outcomes-spill.sqlite" if red is not None else "outcomes.sqlite")
    found: set[str] = set()
    integrity = "ok"
    if db.exists():
        con = sqlite3.connect(db)
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        found = {row[0] for row in con.execute("SELECT request_id FROM outcomes")}
        con.close()
    if red is not None:
        found |= red.records()
    return found, integrity


def _report(
    results: list[dict],
    stats: dict,
    found: set[str],
    integrity: str,
    elapsed: float,
    requests: int,
    concurrency: int,
    chaos: dict,
    breaker: bool,
    stream_share: float,
) -> dict:
    classes: dict[str, int] = {}
    for r in results:
        classes[r["class"]] = classes.get(r["class"], 0) + 1
    ids = [r["id"] for r in results if r["id"]]
    faults = {**stats["primary"].get("faults", {}), **stats["primary"].get("body_faults", {})}
    return {
        "requests_sent": len(results),
        "streamed": sum(r["stream"] for r in results),
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "chaos": chaos,
        "breaker": breaker,
        "faults_injected": {"total": sum(faults.values()), **faults},
        # faults that can end a stream after its first byte (a clean error event is then the best answer)
        "stream_faults_after_first_byte": faults.get("midstream", 0) + stats["primary"].get("body_faults_streamed", 0),
        "upstream_requests": {k: v["requests"] for k, v in stats.items()},
        "ok": classes.get("ok", 0),
        "client_visible_failures": {
            "before_first_byte": classes.get("failed_before_first_byte", 0),
            "midstream_clean_error": classes.get("midstream_clean_error", 0),
            "unclean": classes.get("unclean", 0),
        },
        "records": {
            "request_ids_seen": len(ids),
            "found": sum(i in found for i in ids),
            "lost": sum(i not in found for i in ids),
            "rows": len(found),
            "integrity": integrity,
        },
        "examples": [r for r in results if r["class"] not in ("ok", "midstream_clean_error")][:5],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--chaos", type=json.loads, default=DEFAULT_CHAOS, help="JSON: probability per fault kind")
    ap.add_argument("--stream-share", type=float, default=0.5)
    ap.add_argument(
        "--breaker", action="store_true", help="keep the circuit breaker at its defaults (it hides faults once open)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retry-after", type=float, default=0.2, help="Retry-After seconds on injected 429s (<0: none)")
    ap.add_argument(
        "--body-chaos",
        type=json.loads,
        nargs="?",
        const=BODY_CHAOS,
        default=None,
        help="JSON: probability per malformed-200 / mid-body fault (no value: a default mix)",
    )
    ap.add_argument("--redis-outage", action="store_true", help="shared state in Redis, frozen then stopped mid-run")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    rep = run(
        a.requests,
        a.concurrency,
        a.chaos,
        a.stream_share,
        a.breaker,
        a.seed,
        a.retry_after if a.retry_after >= 0 else None,
        body_chaos=a.body_chaos,
        redis_outage=a.redis_outage,
    )
    text = json.dumps(rep, indent=2)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
