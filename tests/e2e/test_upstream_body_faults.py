"""Upstream bodies that break after a 200: resets, stalls, malformed JSON, leaked secrets (issue 16).

Each test drives a running gateway against fake upstream processes that inject the fault, then
checks what the client saw, the outcome record and the metrics.
"""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import openai
import pytest

from gateway.outcomes.sqlite import SQLiteStore
from tests.support.paths import ROOT
from tests.support.procs import stop, upstream_entry

CHECKER = ROOT / "routers" / "artifacts" / "answer-check"
SECRET = "sk-test-upstream-secret-0123456789"
MALFORMED = ("non_json", "json_list", "wrong_choices", "string_usage", "reset_mid_body")


def metric(gw, name: str, **labels: str) -> float:
    total = 0.0
    for line in httpx.get(f"{gw.url}/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def records(gw) -> SQLiteStore:
    stop(gw.proc)  # flush the outcome queue
    return SQLiteStore(gw.config.parent / "outcomes.sqlite")


def _pair(a, b, **extra) -> dict:
    return {
        "upstreams": {"primary": upstream_entry(a, **extra), "backup": upstream_entry(b, **extra)},
        "policies": {"chat": {"candidates": ["primary", "backup"], "objective": {"threshold": 0.5}}},
    }


def test_malformed_200_is_a_failed_attempt_that_falls_back(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    patient = {"retry": {"attempts": 2, "backoff": 0.01, "budget": {"min_retries": 100}}}
    gw = gateway(_pair(a, b, breaker={"consecutive_failures": 100}, **patient))
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    ids = []
    for kind in MALFORMED:
        a.control(body_fault=kind, body_fault_count=2)  # both attempts on the primary
        raw = c.chat.completions.with_raw_response.create(
            model="router-chat", messages=[{"role": "user", "content": kind}]
        )
        assert raw.parse().choices[0].message.content == f"Echo: {kind}", kind
        assert raw.headers["x-shunter-model"] == "backup" and raw.headers["x-shunter-reason"] == "fallback"
        ids.append(raw.headers["x-shunter-request-id"])
    assert sum(a.stats()["body_faults"].values()) == 2 * len(MALFORMED)
    bad = metric(gw, "shunter_upstream_errors_total", upstream="primary", error="bad_response")
    assert bad == 2 * (len(MALFORMED) - 1)  # every malformed body counted; the reset as body_reset
    assert metric(gw, "shunter_upstream_errors_total", upstream="primary", error="body_reset") == 2
    assert metric(gw, "shunter_upstream_inflight_requests", upstream="primary") == 0
    store = records(gw)
    for rid in ids:
        o = store.get(rid)
        assert o is not None and (o.status, o.served, o.reason) == (200, "backup", "fallback")
        assert [at["upstream"] for at in o.attempts] == ["primary", "primary"]


def test_malformed_200_with_no_fallback_is_a_clean_502_with_a_record(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_pair(a, b))
    a.control(body_fault="wrong_choices")
    r = httpx.post(  # the upstream model itself: nothing to fall back to
        f"{gw.base_url}/chat/completions",
        json={"model": "primary", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_bad_response"
    rid = r.headers["x-shunter-request-id"]
    o = records(gw).get(rid)
    assert o is not None and (o.status, o.error_type) == (502, "upstream_bad_response")


@pytest.mark.parametrize("kind", ["bad_chunk", "non_json_chunk", "error_event"])
def test_broken_stream_event_ends_with_our_error_event_and_never_leaks_the_key(gateway, fake_upstream, kind):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_pair(a, b, api_key="os.environ/SHUNTER_TEST_UPSTREAM_KEY"), env={"SHUNTER_TEST_UPSTREAM_KEY": SECRET})
    a.control(body_fault=kind, reply="one two three four five six")
    with httpx.stream(
        "POST",
        f"{gw.base_url}/chat/completions",
        json={"model": "router-chat", "messages": [{"role": "user", "content": "x"}], "stream": True},
    ) as r:
        assert r.status_code == 200
        rid = r.headers["x-shunter-request-id"]
        body = r.read().decode()
    assert SECRET not in body
    events = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
    assert events[0].startswith("{") and '"choices"' in events[0]  # the first event was relayed
    assert '"error"' in events[-1] and '"code":"upstream_' in events[-1]  # then our own error event
    if kind == "error_event":
        assert "[REDACTED]" in events[-1] and "overloaded" in events[-1]
    assert b.stats()["requests"] == 0  # after the first byte: never retried
    assert metric(gw, "shunter_upstream_inflight_requests", upstream="primary") == 0
    o = records(gw).get(rid)
    assert o is not None and o.error_type and o.error_type.startswith("midstream_")
    conn = sqlite3.connect(gw.config.parent / "outcomes.sqlite")
    assert not [r for r in conn.execute("SELECT * FROM outcomes") if SECRET in repr(r)]
    assert SECRET not in gw.output()


def test_non_json_body_carrying_the_key_is_not_echoed(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_pair(a, b, api_key="os.environ/SHUNTER_TEST_UPSTREAM_KEY"), env={"SHUNTER_TEST_UPSTREAM_KEY": SECRET})
    a.control(body_fault="non_json")
    b.control(body_fault="non_json")
    r = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "router-chat", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 502 and SECRET not in r.text
    assert SECRET not in gw.output()


@pytest.mark.parametrize("stream", [False, True])
def test_stalled_body_reports_the_idle_timeout(gateway, fake_upstream, stream):
    a, b = fake_upstream("a"), fake_upstream("b")
    timeouts = {"connect": 1, "first_byte": 5, "total": 30, "idle": 1}
    gw = gateway({**_pair(a, b, retry={"attempts": 1}, timeouts=timeouts), "server": {"request_timeout": 30}})
    a.control(body_fault="stall_mid_body", reply="one two three four five six")
    body = {"model": "primary", "messages": [{"role": "user", "content": "x"}], "stream": stream}
    r = httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=20)
    assert "request timeout" not in r.text
    if stream:
        assert r.status_code == 200
        err = r.text.strip().splitlines()[-1]
        assert "idle timeout" in err and "upstream_idle_timeout" in err
    else:
        assert r.status_code == 504
        e = r.json()["error"]
        assert e["code"] == "upstream_idle_timeout" and "1s (the idle timeout)" in e["message"]
    assert metric(gw, "shunter_upstream_inflight_requests", upstream="primary") == 0


def _cascade_cfg(cheap, strong, backup, max_concurrency: int) -> dict:
    timeouts = {"connect": 1, "first_byte": 5, "total": 30, "idle": 1}
    return {
        "server": {"request_timeout": 10},
        "upstreams": {
            "cheap": upstream_entry(
                cheap,
                input_price=0.1,
                output_price=0.2,
                max_concurrency=max_concurrency,
                retry={"attempts": 1},
                breaker={"consecutive_failures": 100},
                timeouts=timeouts,
            ),
            "strong": upstream_entry(strong, input_price=5.0, output_price=15.0, timeouts=timeouts),
            "mid": upstream_entry(backup, input_price=1.0, output_price=2.0),
        },
        "policies": {
            "frugal": {
                "candidates": ["strong", "cheap"],
                "fallbacks": ["mid"],
                "cascade": {"checker": str(CHECKER), "threshold": 1.0},  # every answer is doubted
                "objective": {"threshold": 0.5},
            }
        },
    }


def test_cascade_through_resets_and_malformed_200s_leaks_no_slot(gateway, fake_upstream):
    """Issue 16 item 1: more faulty cheap answers than cheap has slots, then full concurrency again."""
    cheap, strong, backup = fake_upstream("cheap-v1"), fake_upstream("strong-v1"), fake_upstream("mid-v1")
    slots = 2
    gw = gateway(_cascade_cfg(cheap, strong, backup, slots))
    strong.control(reply="Carbon dioxide.")
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0, timeout=15)
    faults = ["reset_mid_body", "non_json", "stall_mid_body", "json_list", "reset_mid_body", "wrong_choices"]
    for kind in faults:  # 3x the cheap model's slots
        cheap.control(body_fault=kind, body_fault_count=1)
        raw = c.chat.completions.with_raw_response.create(
            model="router-frugal", messages=[{"role": "user", "content": kind}]
        )
        assert raw.parse().model == "strong", kind
        stages = raw.headers["x-shunter-cascade"].split("->")
        assert stages[0].startswith("cheap(upstream_") and stages[1] == "strong(final)", stages
    assert metric(gw, "shunter_upstream_inflight_requests", upstream="cheap") == 0
    assert backup.stats()["requests"] == 0  # fallbacks are for failures, not for escalation

    async def burst() -> list[str]:
        ac = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0, timeout=8)
        cheap.control(delay=0.3)  # every slot busy at once
        rs = await asyncio.gather(
            *[
                ac.chat.completions.with_raw_response.create(
                    model="router-frugal",
                    messages=[{"role": "user", "content": f"q {i}"}],
                    extra_headers={"x-shunter-candidates": "cheap"},
                )
                for i in range(2 * slots)
            ]
        )
        await ac.close()
        return [r.parse().model for r in rs]

    assert asyncio.run(burst()) == ["cheap"] * (2 * slots)
    assert metric(gw, "shunter_upstream_inflight_requests", upstream="cheap") == 0


def test_cascade_never_escalates_into_fallbacks(gateway, fake_upstream):
    """Issue 16 item 8: the last candidate's answer is final; the fallback is not a third paid call."""
    cheap, strong, backup = fake_upstream("cheap-v1"), fake_upstream("strong-v1"), fake_upstream("mid-v1")
    gw = gateway(_cascade_cfg(cheap, strong, backup, 4))
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="router-frugal", messages=[{"role": "user", "content": "what is 2+2?"}]
    )
    assert raw.parse().model == "strong"
    assert raw.headers["x-shunter-cascade"].endswith("strong(final)")
    assert backup.stats()["requests"] == 0 and cheap.stats()["requests"] == 1
    # every candidate failing is what the fallback is for
    cheap.control(fail_next=5, fail_status=500)
    strong.control(fail_next=5, fail_status=500)
    raw = c.chat.completions.with_raw_response.create(
        model="router-frugal", messages=[{"role": "user", "content": "still there?"}]
    )
    assert raw.parse().model == "mid" and backup.stats()["requests"] == 1
