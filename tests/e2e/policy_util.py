"""Helpers shared by the policy end-to-end tests (test_policies*.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import openai

from tests.conftest import FAKE, ROOT, FakeUpstream, Gateway, free_port, stop, wait_http, write_config


def client(gw, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, **kw)


def chat(gw, text: str, model: str = "router-chat", headers: dict | None = None, **kw):
    """One chat call; returns (parsed response, response headers)."""
    raw = client(gw).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers=headers, **kw
    )
    return raw.parse(), raw.headers


def outcome(db: Path, request_id: str, timeout: float = 10.0) -> dict:
    """The outcome row of a request, waiting for the recorder to write it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            conn = sqlite3.connect(db)
            conn.row_factory = sqlite3.Row
            try:
                row = conn.execute("SELECT * FROM outcomes WHERE request_id=?", (request_id,)).fetchone()
            except sqlite3.OperationalError:
                row = None
            finally:
                conn.close()
            if row is not None:
                return dict(row)
        time.sleep(0.1)
    raise AssertionError(f"no outcome for {request_id} in {db}")


@contextmanager
def processes(tmp: Path) -> Iterator[tuple[Callable[..., FakeUpstream], Callable[..., Gateway]]]:
    """Module-scoped counterparts of conftest's ``fake_upstream`` and ``gateway`` fixtures.

    Tests that only read from one gateway share it, which keeps the policy suite's run time down.
    """
    procs: list[subprocess.Popen] = []
    gateways: list[Gateway] = []

    def fake(model_id: str) -> FakeUpstream:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(FAKE), "--port", str(port), "--model-id", model_id],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/v1/models", 30, proc)
        return FakeUpstream(port, proc, model_id)

    def gateway(cfg: dict) -> Gateway:
        n = len(gateways)
        cfg.setdefault("server", {}).setdefault("outcomes_path", str(tmp / f"outcomes-{n}.sqlite"))
        path = write_config(tmp / f"policy-{n}.yaml", cfg)
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = open(tmp / f"gateway-{n}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        gw = Gateway(port, proc, path, env, Path(log.name))
        gw.db = Path(cfg["server"]["outcomes_path"])
        gateways.append(gw)
        procs.append(proc)
        wait_http(f"{gw.url}/readyz", 120, proc)
        return gw

    try:
        yield fake, gateway
    finally:
        for gw in gateways:
            stop(gw.proc)
        for p in procs:
            stop(p, signal.SIGKILL)
