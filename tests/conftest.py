"""Fixtures that start real processes: fake upstreams, the gateway, redis-server.

The helpers they are built on live in ``tests/support``; tests import from there.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.procs import FakeUpstream, Gateway, free_port, start_fake_upstream, start_gateway, stop, write_config
from tests.support.wait import wait_until


@pytest.fixture
def fake_upstream() -> Iterator[Callable[..., FakeUpstream]]:
    started: list[FakeUpstream] = []

    def start(model_id: str = "fake-model", port: int | None = None) -> FakeUpstream:
        up = start_fake_upstream(model_id, port)
        started.append(up)
        return up

    yield start
    for up in started:
        stop(up.proc, signal.SIGKILL)


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
        n = len(started)
        db = None
        if isinstance(cfg, dict):
            db = cfg.setdefault("server", {}).setdefault("outcomes_path", str(tmp_path / "outcomes.sqlite"))
            path = write_config(tmp_path / f"policy-{n}.yaml", cfg)
        else:
            path = cfg
        gw = start_gateway(path, tmp_path / f"gateway-{n}.log", env, port, ready_timeout, args)
        gw.db = Path(db) if db else None
        started.append(gw)
        return gw

    yield start
    for gw in started:
        stop(gw.proc)
        print(f"--- gateway :{gw.port} log (tail) ---\n{gw.output()[-3000:]}")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


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
    wait_until(lambda: _accepts(port), 20, what=f"redis-server on :{port}")
    yield f"redis://127.0.0.1:{port}/0"
    stop(proc)
