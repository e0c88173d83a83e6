"""Judged shadow sampling through a running gateway: the client's answer and latency do not
depend on it (slow shadow model and judge), the judged feedback lands on the request, tool
requests and ``store: false`` are never shadowed, and the metrics show it."""

from __future__ import annotations

import sqlite3
import time

import anthropic
import httpx
import pytest

from tests.support.policies import chat, client, outcome, processes
from tests.support.procs import upstream_entry
from tests.support.wait import holds_for, wait_until


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shadow")
    with processes(tmp) as (fake, gateway):
        cheap, strong, judge = fake("cheap-model"), fake("strong-model"), fake("judge-model")
        cheap.control(reply="cheap answer: six")
        strong.control(reply="strong answer: eight", delay=4.0)  # a slow shadow call (first_byte timeout: 5 s)
        judge.control(judge_prefers="strong answer", delay=1.0)
        gw = gateway(
            {
                "upstreams": {
                    "cheap": upstream_entry(cheap),
                    "strong": upstream_entry(strong),
                    "judge": upstream_entry(judge),
                },
                "policies": {
                    "chat": {
                        "candidates": ["cheap", "strong"],
                        "rules": [{"name": "all-cheap", "min_tokens": 0, "model": "cheap"}],
                        "learning": {"shadow": {"rate": 1.0, "budget_usd_per_day": 1.0, "judge": "judge"}},
                    }
                },
            }
        )
        yield gw, cheap, strong, judge


def feedback(db, request_id: str) -> dict[str, tuple[float, str]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT source, score, label FROM feedback WHERE request_id=?", (request_id,)).fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        conn.close()
    return {s: (score, label) for s, score, label in rows}


def test_client_never_waits_and_the_judgement_lands(setup):
    gw, _, strong, judge = setup
    chat(gw, "warm-up", headers={"x-shunter-shadow": "off"})
    t = time.perf_counter()
    r, h = chat(gw, "How many legs does a spider have?")
    took = time.perf_counter() - t
    assert r.choices[0].message.content == "cheap answer: six" and r.model == "cheap"
    assert took < 2.5  # the shadow call alone takes 4 s, the judge 2 x 1 s more
    rid = h["x-shunter-request-id"]
    outcome(gw.db, rid)
    items = wait_until(lambda: feedback(gw.db, rid) or None, 30, 0.2, what="judge feedback")
    assert items == {"judge": (0.0, "agree"), "judge@strong": (1.0, "agree")}
    text = httpx.get(f"{gw.url}/metrics").text
    assert 'shunter_shadow_calls_total{model="strong",policy="chat",result="ok"}' in text
    assert 'shunter_judge_order_agreement_total{agreed="true",policy="chat"}' in text
    assert 'shunter_judge_preferences_total{model_a="cheap",model_b="strong",policy="chat",winner="b"}' in text
    assert "shunter_shadow_budget_remaining_usd" in text


def test_streamed_answer_is_judged_too(setup):
    gw, *_ = setup
    raw = client(gw).chat.completions.with_raw_response.create(
        model="router-chat", messages=[{"role": "user", "content": "Name a prime."}], stream=True
    )
    rid = raw.headers["x-shunter-request-id"]
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text.strip() == "cheap answer: six"
    wait_until(lambda: feedback(gw.db, rid) or None, 30, 0.2, what="judge feedback on a streamed request")


def test_anthropic_and_responses_clients_are_judged_too(setup):
    """A Messages request (the Anthropic SDK) and a Responses request (the openai SDK) are judged
    as the chat request the gateway made of them; ``store: false`` on a Responses request opts
    out as it does on chat."""
    gw, *_ = setup
    a = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
    msg = a.messages.with_raw_response.create(
        model="router-chat", max_tokens=64, messages=[{"role": "user", "content": "Name a colour."}]
    )
    assert msg.parse().content[0].text == "cheap answer: six"
    resp = client(gw).responses.with_raw_response.create(model="router-chat", input="Name a fruit.")
    assert resp.parse().output_text == "cheap answer: six"
    for raw in (msg, resp):
        rid = raw.headers["x-shunter-request-id"]
        items = wait_until(lambda rid=rid: feedback(gw.db, rid) or None, 30, 0.2, what=f"judge feedback on {rid}")
        assert items == {"judge": (0.0, "agree"), "judge@strong": (1.0, "agree")}
    private = client(gw).responses.with_raw_response.create(model="router-chat", input="Private.", store=False)
    rid = private.headers["x-shunter-request-id"]
    outcome(gw.db, rid)
    text = httpx.get(f"{gw.url}/metrics").text
    assert 'shunter_shadow_skipped_total{policy="chat",reason="opt_out"}' in text
    holds_for(lambda: not feedback(gw.db, rid), 3.0, what="no judgement of a store: false response")


def test_tools_and_store_false_are_never_shadowed(setup):
    gw, _, strong, _ = setup
    before = strong.stats()["requests"]
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    _, h1 = chat(gw, "What time is it?", tools=tools)
    _, h2 = chat(gw, "Private question.", extra_body={"store": False})
    _, h3 = chat(gw, "Another private one.", headers={"x-shunter-shadow": "off"})
    for h in (h1, h2, h3):
        outcome(gw.db, h["x-shunter-request-id"])
    holds_for(lambda: strong.stats()["requests"] == before, 3.0, what="no shadow call")
    text = httpx.get(f"{gw.url}/metrics").text
    assert 'shunter_shadow_skipped_total{policy="chat",reason="tools"}' in text
    assert 'shunter_shadow_skipped_total{policy="chat",reason="opt_out"}' in text
