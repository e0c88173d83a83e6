"""Circuit breaker, retry budget and 429 cooldown through running gateways and fake upstreams."""

from __future__ import annotations

import re

import httpx
import openai

from tests.support.procs import upstream_entry
from tests.support.wait import wait_until


def _cfg(a, b, breaker: dict | None = None, retry: dict | None = None, **server) -> dict:
    primary = upstream_entry(a, breaker=breaker or {}, retry={"attempts": 1, "backoff": 0.01, **(retry or {})})
    return {
        "server": server,
        "upstreams": {"primary": primary, "backup": upstream_entry(b)},
        "policies": {"chat": {"candidates": ["primary", "backup"]}},
    }


def _ask(gw) -> str:
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(model="router-chat", messages=[{"role": "user", "content": "hi"}])
    return raw.headers["x-shunter-model"]


def _state(gw, upstream: str) -> int:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    m = re.search(rf'shunter_circuit_state\{{upstream="{upstream}"\}} (\S+)', text)
    return int(float(m.group(1))) if m else -1


def test_consecutive_failures_open_then_half_open_probe_closes(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_cfg(a, b, {"consecutive_failures": 3, "open_for": 3.0}))  # long enough for a busy machine
    a.control(fail_next=1000, fail_status=500)
    assert [_ask(gw) for _ in range(6)] == ["backup"] * 6  # every request still answered
    assert a.stats()["requests"] == 3  # opened after 3 failures: the rest skipped primary
    assert _state(gw, "primary") == 2
    assert "circuit open" in httpx.get(f"{gw.url}/readyz", timeout=5).json()["upstreams"]["primary"]
    a.control(fail_next=0)
    wait_until(lambda: _ask(gw) == "primary", 10, 0.1, "the half-open probe succeeds (after open_for)")
    assert _state(gw, "primary") == 0
    assert _ask(gw) == "primary"


def test_failed_probe_reopens(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_cfg(a, b, {"consecutive_failures": 2, "open_for": 2.0}))
    a.control(fail_next=1000, fail_status=503)
    for _ in range(3):
        _ask(gw)
    assert a.stats()["requests"] == 2
    # after open_for, one probe goes to primary, fails, and the request falls back
    wait_until(lambda: _ask(gw) == "backup" and a.stats()["requests"] >= 3, 10, 0.1, "a half-open probe")
    assert a.stats()["requests"] == 3 and _state(gw, "primary") == 2  # ... and reopened
    assert _ask(gw) == "backup" and a.stats()["requests"] == 3


def test_error_rate_over_window_opens(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(
        _cfg(a, b, {"consecutive_failures": 100, "error_rate": 0.5, "min_calls": 6, "window": 30, "open_for": 30})
    )
    for i in range(7):  # fail, ok, fail, ok, ..., fail: never two failures in a row, 4 of 7 failed
        a.control(fail_next=1 if i % 2 == 0 else 0, fail_status=500)
        _ask(gw)
    assert _state(gw, "primary") == 2
    n = a.stats()["requests"]
    assert [_ask(gw) for _ in range(3)] == ["backup"] * 3 and a.stats()["requests"] == n


def test_retry_budget_caps_retries_against_a_failing_upstream(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    cfg = _cfg(
        a,
        b,
        {"consecutive_failures": 1000, "min_calls": 1000},
        {"attempts": 3, "budget": {"ratio": 0.1, "min_retries": 2, "window": 60}},
    )
    gw = gateway(cfg)
    a.control(fail_next=1000, fail_status=500)
    n = 10
    assert [_ask(gw) for _ in range(n)] == ["backup"] * n
    # without a budget: 3 tries per request (30); with it: 10 first tries + 2 retries
    assert a.stats()["requests"] == n + 2
    assert 'shunter_rate_limited_total{limit="retry_budget"}' in httpx.get(f"{gw.url}/metrics", timeout=5).text


def test_upstream_429_retry_after_is_a_cooldown(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_cfg(a, b, retry={"attempts": 2, "max_backoff": 0.5}))
    a.control(fail_next=1, fail_status=429, retry_after=3)
    assert _ask(gw) == "backup"  # Retry-After 3s > max_backoff: fall back at once
    assert [_ask(gw) for _ in range(4)] == ["backup"] * 4
    assert a.stats()["requests"] == 1  # nobody called primary during its cooldown
    wait_until(lambda: _ask(gw) == "primary", 15, 0.2, "primary serves again after its Retry-After")
    assert a.stats()["requests"] == 2


def test_breaker_openings_are_shared_through_redis(gateway, fake_upstream, redis_server):
    a, b = fake_upstream("a"), fake_upstream("b")
    cfg = lambda: _cfg(a, b, {"consecutive_failures": 2, "open_for": 30}, redis_url=redis_server)  # noqa: E731
    gw1, gw2 = gateway(cfg()), gateway(cfg())
    a.control(fail_next=1000, fail_status=500)
    _ask(gw1)
    _ask(gw1)
    assert a.stats()["requests"] == 2 and _state(gw1, "primary") == 2
    wait_until(lambda: _state(gw2, "primary") == 2, 10, 0.1, "the second replica sees the opening")
    assert [_ask(gw2) for _ in range(3)] == ["backup"] * 3
    assert a.stats()["requests"] == 2  # the second replica never called the failing upstream
