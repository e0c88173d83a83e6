"""Real processes the tests start: fake OpenAI-compatible upstreams, gateways, and their configs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.support.paths import FAKE, ROOT
from tests.support.wait import wait_http


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    """Signal ``proc`` and wait for it; kill it if it has not exited after ``timeout`` seconds."""
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


def start_fake_upstream(model_id: str = "fake-model", port: int | None = None, quiet: bool = False) -> FakeUpstream:
    """``tests/fakes/fake_upstream.py`` on a free port, answering ``/v1/models``."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", str(port), "--model-id", model_id],
        stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", 30, proc)
    except BaseException:
        stop(proc, signal.SIGKILL)
        raise
    return FakeUpstream(port, proc, model_id)


@dataclass
class Gateway:
    port: int
    proc: subprocess.Popen
    config: Path
    env: dict = field(default_factory=dict)
    log: Path | None = None
    db: Path | None = None  # the outcome store, when the test wrote the config

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
    """A policy-file upstream for a fake: prices, tools and JSON mode, short timeouts."""
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


def start_gateway(
    config: Path,
    log: Path,
    env: dict | None = None,
    port: int | None = None,
    ready_timeout: float = 120,
    args: list[str] | None = None,
) -> Gateway:
    """``python -m gateway serve`` on ``config``, output to ``log``, once ``/readyz`` answers 200."""
    port = port or free_port()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port), *(args or [])],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    gw = Gateway(port, proc, config, full_env, log)
    try:
        wait_http(f"{gw.url}/readyz", ready_timeout, proc)
    except (RuntimeError, TimeoutError) as exc:
        stop(proc)
        raise type(exc)(f"{exc}\n--- gateway log (tail) ---\n{gw.output()[-3000:]}") from None
    except BaseException:
        stop(proc)
        raise
    return gw
