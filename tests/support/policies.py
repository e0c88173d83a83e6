"""Helpers shared by the policy end-to-end tests (``tests/e2e/test_policies*.py``)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import openai

from tests.support.procs import FakeUpstream, Gateway, start_fake_upstream, start_gateway, stop, write_config
from tests.support.wait import wait_until


def client(gw, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, **kw)


def chat(gw, text: str, model: str = "router-chat", headers: dict | None = None, **kw):
    """One chat call; returns (parsed response, response headers)."""
    raw = client(gw).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers=headers, **kw
    )
    return raw.parse(), raw.headers


def outcome_row(db: Path, request_id: str) -> dict | None:
    """The outcome row of a request, or ``None`` while it is not written."""
    if not db.exists():
        return None
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM outcomes WHERE request_id=?", (request_id,)).fetchone()
    except sqlite3.OperationalError:  # the recorder has not created the table yet
        row = None
    finally:
        conn.close()
    return dict(row) if row is not None else None


def outcome(db: Path, request_id: str, timeout: float = 10.0) -> dict:
    """The outcome row of a request, waiting for the recorder to write it."""
    return wait_until(lambda: outcome_row(db, request_id), timeout, 0.1, what=f"outcome {request_id} in {db}")


@contextmanager
def processes(tmp: Path) -> Iterator[tuple[Callable[..., FakeUpstream], Callable[..., Gateway]]]:
    """Module-scoped counterparts of the ``fake_upstream`` and ``gateway`` fixtures.

    Tests that only read from one gateway share it, which keeps the policy suite's run time down.
    """
    procs: list[subprocess.Popen] = []
    gateways: list[Gateway] = []

    def fake(model_id: str) -> FakeUpstream:
        up = start_fake_upstream(model_id, quiet=True)
        procs.append(up.proc)
        return up

    def gateway(cfg: dict) -> Gateway:
        n = len(gateways)
        cfg.setdefault("server", {}).setdefault("outcomes_path", str(tmp / f"outcomes-{n}.sqlite"))
        gw = start_gateway(write_config(tmp / f"policy-{n}.yaml", cfg), tmp / f"gateway-{n}.log")
        gw.db = Path(cfg["server"]["outcomes_path"])
        gateways.append(gw)
        return gw

    try:
        yield fake, gateway
    finally:
        for gw in gateways:
            stop(gw.proc)
        for p in procs:
            stop(p, signal.SIGKILL)
