"""Upstream faults through a running gateway: retries, fallback, clean mid-stream errors."""

from __future__ import annotations

import openai
import pytest

from tests.support.procs import free_port, upstream_entry


def _cfg(primary: dict, backup: dict) -> dict:
    return {
        "upstreams": {"primary": primary, "backup": backup},
        "policies": {"chat": {"candidates": ["primary", "backup"], "objective": {"threshold": 0.5}}},
    }


def _client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)


def test_500_then_success_is_retried_on_same_upstream(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_cfg(upstream_entry(a), upstream_entry(b)))
    a.control(fail_next=1, fail_status=500)
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="router-chat", messages=[{"role": "user", "content": "retry me"}]
    )
    assert raw.parse().model == "primary"
    assert a.stats()["requests"] == 2 and b.stats()["requests"] == 0


def test_429_honours_retry_after_then_succeeds(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_cfg(upstream_entry(a), upstream_entry(b)))
    a.control(fail_next=1, fail_status=429, retry_after=0)
    r = _client(gw).chat.completions.create(model="router-chat", messages=[{"role": "user", "content": "x"}])
    assert r.model == "primary" and a.stats()["requests"] == 2


def test_connection_refused_falls_back(gateway, fake_upstream):
    b = fake_upstream("b")
    dead = {**upstream_entry(b), "base_url": f"http://127.0.0.1:{free_port()}/v1"}
    gw = gateway(_cfg(dead, upstream_entry(b)))
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="router-chat", messages=[{"role": "user", "content": "fall back"}]
    )
    assert raw.parse().model == "backup"
    assert raw.headers["x-shunter-model"] == "backup"
    assert raw.headers["x-shunter-reason"] == "fallback"
    chunks = list(
        _client(gw).chat.completions.create(
            model="router-chat", messages=[{"role": "user", "content": "s"}], stream=True
        )
    )
    assert {c.model for c in chunks} == {"backup"}


def test_all_upstreams_down_is_a_clean_502(gateway, fake_upstream):
    a = fake_upstream("a")
    dead1 = {**upstream_entry(a), "base_url": f"http://127.0.0.1:{free_port()}/v1"}
    dead2 = {**upstream_entry(a), "base_url": f"http://127.0.0.1:{free_port()}/v1"}
    gw = gateway(_cfg(dead1, dead2))
    with pytest.raises(openai.APIStatusError) as ei:
        _client(gw).chat.completions.create(model="router-chat", messages=[{"role": "user", "content": "x"}])
    assert ei.value.status_code == 502
    assert ei.value.body["code"] == "upstream_failed"


def test_failure_after_first_chunk_ends_with_error_event(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_cfg(upstream_entry(a), upstream_entry(b)))
    a.control(die_after_chunks=2, reply="a b c d e f g h")
    stream = _client(gw).chat.completions.create(
        model="router-chat", messages=[{"role": "user", "content": "x"}], stream=True
    )
    got = []
    with pytest.raises(openai.APIError) as ei:
        for chunk in stream:
            got.append(chunk)
    assert len(got) == 2  # the chunks before the failure arrived, then a clean error
    assert "failed after it started" in str(ei.value.message)
    assert b.stats()["requests"] == 0  # never retried after the first byte
    # the gateway is still fine
    a.control(die_after_chunks=None)
    r = _client(gw).chat.completions.create(model="router-chat", messages=[{"role": "user", "content": "ok"}])
    assert r.choices[0].message.content == "a b c d e f g h"
