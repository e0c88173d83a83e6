"""Security through a running gateway: no upstream secret leaks anywhere, no SSRF."""

from __future__ import annotations

import secrets
import signal
import sqlite3

import httpx
import openai
import pytest

from tests.support.procs import stop, upstream_entry

ADMIN = "admin-key-for-security-tests"


def test_upstream_key_never_leaks(gateway, fake_upstream, tmp_path):
    canary = "sk-canary-" + secrets.token_hex(16)
    a, b = fake_upstream("a"), fake_upstream("b")
    db = tmp_path / "leak.sqlite"
    cfg = {
        "server": {"outcomes_path": str(db)},
        "upstreams": {
            "a": upstream_entry(
                a,
                api_key="os.environ/CANARY_KEY",
                retry={"attempts": 2, "backoff": 0.01},
                breaker={"consecutive_failures": 1000, "min_calls": 1000},
            ),
            "b": upstream_entry(b),
        },
        "policies": {"chat": {"candidates": ["a", "b"]}},
    }
    gw = gateway(cfg, env={"CANARY_KEY": canary, "SHUNTER_ADMIN_KEY": ADMIN})
    a.control(echo_auth=True)  # the worst upstream: it repeats our credentials in its errors
    seen: list[str] = []
    c = openai.OpenAI(base_url=gw.base_url, api_key="client-key", max_retries=0)

    def call(model: str, stream: bool = False) -> None:
        with httpx.Client(timeout=30) as h:
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            r = h.post(f"{gw.base_url}/chat/completions", json=body)
            seen.append(str(r.headers) + r.text)

    call("a")
    call("a", stream=True)
    call("router-chat", stream=True)
    for status in (400, 401, 403, 404, 422, 429, 500, 503):
        a.control(fail_next=2, fail_status=status, retry_after=None)
        call("a")
        a.control(fail_next=2, fail_status=status)
        call("router-chat")
    # the gateway did send the canary upstream, and the upstream did echo it back to the gateway ...
    a.control(fail_next=1, fail_status=400)
    with pytest.raises(openai.BadRequestError) as ei:
        c.chat.completions.create(model="a", messages=[{"role": "user", "content": "x"}])
    assert "[REDACTED]" in ei.value.message
    # ... yet it is in no response, metric, admin output, log line or outcome record
    seen.append(httpx.get(f"{gw.url}/metrics", timeout=5).text)
    seen.append(httpx.get(f"{gw.url}/admin/config", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5).text)
    seen.append(httpx.get(f"{gw.url}/readyz", timeout=5).text)
    seen.append(httpx.get(f"{gw.base_url}/models", timeout=5).text)
    for text in seen:
        assert canary not in text
    stop(gw.proc, signal.SIGTERM)  # flush the outcome queue
    log = gw.output()
    assert "Application startup complete" in log
    assert canary not in log
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0] >= 10
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    for f in tmp_path.glob("leak.sqlite*"):
        assert canary.encode() not in f.read_bytes()


def test_clients_cannot_choose_the_upstream_url(gateway, fake_upstream):
    a, b, evil = fake_upstream("a"), fake_upstream("b"), fake_upstream("evil")
    gw = gateway(
        {
            "upstreams": {"a": upstream_entry(a), "b": upstream_entry(b)},
            "policies": {"chat": {"candidates": ["a", "b"]}},
        }
    )
    target = evil.base_url
    attempts = [
        ({"model": "router-chat", "base_url": target, "api_base": target, "url": target, "endpoint": target}, {}),
        ({"model": target}, {}),
        ({"model": f"{target}/chat/completions"}, {}),
        ({"model": "router-chat", "shunter": {"candidates": [target]}}, {}),
        ({"model": "router-chat", "shunter": {"policy": target}}, {}),
        ({"model": "router-chat"}, {"x-shunter-candidates": target, "x-shunter-upstream": target}),
        (
            {"model": "router-chat"},
            {
                "Host": f"127.0.0.1:{evil.port}",
                "X-Forwarded-Host": f"127.0.0.1:{evil.port}",
                "Forwarded": f"host=127.0.0.1:{evil.port}",
            },
        ),
        (
            {"model": "a", "extra_headers": {"Host": f"127.0.0.1:{evil.port}"}, "base_url": target},
            {"x-shunter-base-url": target},
        ),
        ({"model": "../../../evil"}, {}),
    ]
    statuses = []
    for body, headers in attempts:
        payload = {"messages": [{"role": "user", "content": "where do you go"}], **body}
        r = httpx.post(f"{gw.base_url}/chat/completions", json=payload, headers=headers, timeout=30)
        statuses.append(r.status_code)
        assert r.status_code < 500, r.text
    assert evil.stats()["requests"] == 0  # the unconfigured server was never called
    assert 200 in statuses and a.stats()["requests"] + b.stats()["requests"] == statuses.count(200)
