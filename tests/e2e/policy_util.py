"""Helpers shared by the policy end-to-end tests (test_policies*.py)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import openai


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
