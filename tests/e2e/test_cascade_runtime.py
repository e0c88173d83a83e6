"""FrugalGPT runtime cascade through a running gateway, with the shipped learned answer checker."""

from __future__ import annotations

import sqlite3

import httpx
import openai
import pytest

from tests.support.paths import ROOT
from tests.support.procs import upstream_entry

CHECKER = ROOT / "routers" / "artifacts" / "answer-check"
QUESTION = "Which gas do plants absorb from the air for photosynthesis? Answer with the gas name."


def _cfg(cheap, strong, threshold: float) -> dict:
    return {
        "upstreams": {
            "cheap": upstream_entry(cheap, input_price=0.1, output_price=0.2),
            "strong": upstream_entry(strong, input_price=5.0, output_price=15.0),
        },
        "policies": {
            "frugal": {
                "candidates": ["strong", "cheap"],  # the cascade orders them by expected cost
                "cascade": {"checker": str(CHECKER), "threshold": threshold},
                "objective": {"threshold": 0.5},
            }
        },
    }


@pytest.fixture
def fakes(fake_upstream):
    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    cheap.control(reply="I am not sure.")
    strong.control(reply="Carbon dioxide (CO2).")
    return cheap, strong


def test_weak_answer_escalates_and_user_sees_only_the_final_one(gateway, fakes):
    cheap, strong = fakes
    gw = gateway(_cfg(cheap, strong, threshold=1.0))  # every answer scores below 1.0: always escalate
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="router-frugal", messages=[{"role": "user", "content": QUESTION}]
    )
    r = raw.parse()
    assert r.model == "strong" and r.choices[0].message.content == "Carbon dioxide (CO2)."
    assert raw.headers["x-shunter-reason"] == "cascade"
    stages = raw.headers["x-shunter-cascade"].split("->")
    assert stages[0].startswith("cheap(p=") and stages[1] == "strong(final)"
    assert cheap.stats()["requests"] == 1 and strong.stats()["requests"] == 1
    # streamed: the final answer arrives as chunks, usage included on request
    chunks = list(
        c.chat.completions.create(
            model="router-frugal",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Carbon dioxide (CO2)."
    assert chunks[-1].usage is not None
    metrics = httpx.get(f"{gw.url}/metrics").text
    line = [
        l
        for l in metrics.splitlines()
        if l.startswith("shunter_cascade_escalations_total{") and 'from_model="cheap"' in l
    ]
    assert line and float(line[0].rsplit(" ", 1)[1]) == 2.0
    request_id = raw.headers["x-shunter-request-id"]
    from tests.support.procs import stop

    stop(gw.proc)  # flush the outcome queue
    db = sqlite3.connect(gw.config.parent / "outcomes.sqlite")
    esc, reason, served, cost = db.execute(
        "SELECT escalations, reason, served, cost_usd FROM outcomes WHERE request_id=?", (request_id,)
    ).fetchone()
    assert (esc, reason, served) == (1, "cascade", "strong")
    # both stages were paid for: cost exceeds the strong call alone
    u_cheap, u_strong = (len(QUESTION.split()), 4), (len(QUESTION.split()), 3)
    strong_only = (u_strong[0] * 5.0 + u_strong[1] * 15.0) / 1e6
    assert cost == pytest.approx(strong_only + (u_cheap[0] * 0.1 + u_cheap[1] * 0.2) / 1e6)


def test_confident_answer_stays_on_the_cheap_model(gateway, fakes):
    cheap, strong = fakes
    gw = gateway(_cfg(cheap, strong, threshold=0.0))  # nothing scores below 0: never escalate
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="router-frugal", messages=[{"role": "user", "content": QUESTION}]
    )
    assert raw.parse().model == "cheap"
    assert raw.headers["x-shunter-cascade"].startswith("cheap(p=")
    assert strong.stats()["requests"] == 0


def test_checker_prefers_a_right_answer_to_a_wrong_one():
    """The learned checker itself, on the serving path (ONNX + encoder)."""
    from routers.cascade import AnswerChecker

    checker = AnswerChecker.load(CHECKER)
    p_right, p_wrong = checker.check_texts([QUESTION, QUESTION], ["Carbon dioxide (CO2).", "I am not sure."])
    assert 0.0 <= p_wrong < p_right <= 1.0
