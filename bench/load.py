"""Load generators: ``wrk`` at fixed concurrency (throughput, latency) and a tiny asyncio client
that times the first SSE byte of streamed responses (``wrk`` only sees whole responses)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("post.lua")


@dataclass
class Target:
    """One thing to load: a URL, a JSON body and how to send it."""

    name: str
    host: str
    port: int
    path: str
    body: dict
    auth: str = ""
    unique: bool = False  # replace "{N}" in the body with a per-request counter
    meter: object = None  # a bench.procs.Proc whose CPU time per request is reported
    # several bodies (each with "{N}"): request n sends bodies[n % len] with n in it (real prompts)
    bodies: list[dict] | None = None

    def body_bytes(self, n: int | None = None) -> bytes:
        body = self.bodies[(n or 0) % len(self.bodies)] if self.bodies else self.body
        raw = json.dumps(body).encode()
        return raw.replace(b"{N}", str(n).encode()) if n is not None else raw


def run_wrk(t: Target, duration: float, connections: int, seed: int = 0, threads: int = 1, delay_ms: float = 0) -> dict:
    """One ``wrk`` run (``delay_ms``: think time per connection); rps, latency percentiles (ms), errors."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(json.dumps(t.body).encode())
        body_file = f.name
    bodies_file = ""
    if t.bodies:
        with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
            f.write(b"\n".join(json.dumps(b).encode() for b in t.bodies) + b"\n")
            bodies_file = f.name
    env = {
        **os.environ,
        "BENCH_BODY": body_file,
        "BENCH_BODIES": bodies_file,
        "BENCH_AUTH": t.auth,
        "BENCH_UNIQUE": "1" if t.unique else "0",
        "BENCH_SEED": str(seed),
        "BENCH_DELAY_MS": str(delay_ms),
    }
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://{t.host}:{t.port}{t.path}",
    ]
    cpu0 = t.meter.cpu_seconds() if t.meter is not None else None
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    finally:
        os.unlink(body_file)
        if bodies_file:
            os.unlink(bodies_file)
    cpu1 = t.meter.cpu_seconds() if t.meter is not None else None
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk produced no summary for {t.name}:\n{out.stdout}\n{out.stderr}")
    s = json.loads(line[len("BENCH_JSON ") :])
    errors = s["err_connect"] + s["err_read"] + s["err_write"] + s["err_status"] + s["err_timeout"]
    return {
        "rps": s["requests"] / (s["duration_us"] / 1e6),
        "requests": s["requests"],
        "errors": errors,
        "p50_ms": s["p50_us"] / 1e3,
        "p95_ms": s["p95_us"] / 1e3,
        "p99_ms": s["p99_us"] / 1e3,
        "mean_ms": s["mean_us"] / 1e3,
        # CPU the proxy (or, for direct, the upstream) spent per request: robust to a noisy machine
        "cpu_us_per_req": (cpu1 - cpu0) / max(1, s["requests"]) * 1e6 if cpu0 is not None else None,
    }


def _request(t: Target, n: int | None) -> bytes:
    body = t.body_bytes(n)
    head = [
        f"POST {t.path} HTTP/1.1",
        f"Host: {t.host}:{t.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Accept: text/event-stream",
    ]
    if t.auth:
        head.append(f"Authorization: Bearer {t.auth}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> tuple[float, float]:
    """Send one request on a keep-alive connection; (seconds to first body data, seconds in all)."""
    t0 = time.perf_counter()
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        raise RuntimeError(f"status {status}: {head[:200]!r}")
    lower = head.lower()
    first = None
    if b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readline()
                break
            data = await reader.readexactly(size + 2)
            if first is None and b"data:" in data:
                first = time.perf_counter()
    else:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - t0, end - t0


async def _ttfb(t: Target, requests: int, concurrency: int, seed: int) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    counter = iter(range(seed * 10_000_000, seed * 10_000_000 + requests + concurrency))

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection(t.host, t.port)
        try:
            for _ in range(k):
                out.append(await _one(reader, writer, _request(t, next(counter) if t.unique else None)))
        finally:
            writer.close()

    per = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    await asyncio.gather(*(worker(k) for k in per))
    return out


def measure_ttfb(t: Target, requests: int = 200, concurrency: int = 1, seed: int = 0) -> list[tuple[float, float]]:
    """(time to first SSE data, total) in seconds for each of ``requests`` streamed calls."""
    return asyncio.run(_ttfb(t, requests, concurrency, seed))
