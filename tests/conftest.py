"""Fixtures that start real processes: fake upstreams, the gateway, redis-server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fakes" / "fake_upstream.py"
DATA = Path(os.environ.get("SHUNTER_DATA_DIR", ROOT.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None, ok=(200,)) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            if not out and isinstance(proc.args, list):
                out = f"(command: {' '.join(map(str, proc.args))})"
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered:\n{out[-4000:]}")
        try:
            r = httpx.get(url, timeout=1.0)
            if r.status_code in ok:
                return
            last = r.status_code
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s (last: {last})")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class FakeUpstream:
    port: int
    proc: subprocess.Popen
    model_id: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def control(self, **kw) -> dict:
        return httpx.post(f"http://127.0.0.1:{self.port}/_control", json=kw, timeout=5).json()

    def stats(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.port}/_stats", timeout=5).json()

    def last(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.port}/_last", timeout=5).json()


@pytest.fixture
def fake_upstream() -> Iterator[Callable[..., FakeUpstream]]:
    procs: list[subprocess.Popen] = []

    def start(model_id: str = "fake-model", port: int | None = None) -> FakeUpstream:
        port = port or free_port()
        proc = subprocess.Popen(
            [sys.executable, str(FAKE), "--port", str(port), "--model-id", model_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/v1/models", 30, proc)
        return FakeUpstream(port, proc, model_id)

    yield start
    for p in procs:
        stop(p, signal.SIGKILL)


@dataclass
class Gateway:
    port: int
    proc: subprocess.Popen
    config: Path
    env: dict = field(default_factory=dict)
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def upstream_entry(fake: FakeUpstream, **extra) -> dict:
    entry = {
        "base_url": fake.base_url,
        "model": fake.model_id,
        "input_price": 0.15,
        "output_price": 0.6,
        "context_window": 16000,
        "capabilities": ["streaming", "tools", "json_mode"],
        "retry": {"attempts": 2, "backoff": 0.01},
        "timeouts": {"connect": 1, "first_byte": 5, "total": 30, "idle": 5},
    }
    entry.update(extra)
    return entry


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(
        cfg: dict | Path,
        env: dict | None = None,
        port: int | None = None,
        ready_timeout: float = 120,
        args: list[str] | None = None,
    ) -> Gateway:
        if isinstance(cfg, dict):
            cfg.setdefault("server", {}).setdefault("outcomes_path", str(tmp_path / "outcomes.sqlite"))
            path = write_config(tmp_path / f"policy-{len(started)}.yaml", cfg)
        else:
            path = cfg
        port = port or free_port()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        log = open(tmp_path / f"gateway-{len(started)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port), *(args or [])],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        gw = Gateway(port, proc, path, full_env, Path(log.name))
        started.append(gw)
        wait_http(f"{gw.url}/readyz", ready_timeout, proc)
        return gw

    yield start
    for gw in started:
        stop(gw.proc)
        print(f"--- gateway :{gw.port} log (tail) ---\n{gw.output()[-3000:]}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    exe = shutil.which("redis-server")
    if not exe:
        pytest.fail("redis-server is not installed (.ci/run installs it: apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    stop(proc)
