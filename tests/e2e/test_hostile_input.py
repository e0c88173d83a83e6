"""Hostile and loose input through a running gateway (issue 16, items 6, 9, 10, 12).

- bodies nested deeper than the gateway can forward are a 400, not a 500;
- requests no candidate could ever serve (max_tokens 1e12, a prompt over every context window,
  an image for models without vision) are a 400 with the reason, not a retryable 503;
- loose input is refused: ``"stream": "yes"``, a missing or wrong Content-Type, prompt ``[[]]``;
- with auth on: feedback is bound to the key that made the request (or the admin key), the budget
  message keeps its decimals, ``x-admin-key`` opens ``/metrics``, the API docs are private unless
  ``server.public_docs``;
- the breaker-state gauge turns half-open when ``open_for`` has passed, with no call made.
"""

from __future__ import annotations

import re
import time

import httpx
import orjson
import pytest

from tests.support.procs import upstream_entry
from tests.support.wait import wait_until

ADMIN = "hostile-admin-key"


def _nested(depth: int) -> object:
    """``depth`` levels of arrays/objects, alternating, innermost a string."""
    obj: object = "x"
    for i in range(depth):
        obj = [obj] if i % 2 else {"k": obj}
    return obj


def _chat(**extra) -> dict:
    return {"model": "router-p", "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
def open_gw(gateway, fake_upstream):
    fake = fake_upstream("m-v1")
    cfg = {
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake, context_window=8000)},
        "policies": {"p": {"candidates": ["a", "b"]}},
    }
    return gateway(cfg), fake


def test_deeply_nested_bodies_are_a_400_and_shallow_ones_pass_through(open_gw):
    gw, fake = open_gw
    url = f"{gw.base_url}/chat/completions"
    ok = httpx.post(url, json=_chat(metadata={"deep": _nested(100)}), timeout=10)
    assert ok.status_code == 200, ok.text
    assert fake.last()["metadata"] == {"deep": _nested(100)}  # forwarded intact
    for depth in (200, 256, 600, 1023, 1500):
        body = orjson.dumps(_chat(metadata={"deep": _nested(depth)})) if depth < 254 else _deep_raw(depth)
        r = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10)
        assert r.status_code == 400, (depth, r.status_code, r.text[:200])
        assert r.json()["error"]["code"] == "invalid_json"


def _deep_raw(depth: int) -> bytes:
    """Written by hand: orjson itself cannot write more than 254 levels."""
    inner = b'"x"'
    for i in range(depth):
        inner = b"[" + inner + b"]" if i % 2 else b'{"k":' + inner + b"}"
    return b'{"model":"router-p","messages":[{"role":"user","content":"hi"}],"metadata":{"deep":' + inner + b"}}"


def test_requests_no_candidate_could_ever_serve_are_a_400(open_gw):
    gw, _ = open_gw
    url = f"{gw.base_url}/chat/completions"
    r = httpx.post(url, content=b'{"model":"router-p","messages":[{"role":"user","content":"hi"}],"max_tokens":1e12}',
                   headers={"content-type": "application/json"}, timeout=10)  # fmt: skip
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("context_length_exceeded", "max_tokens")
    assert "a: " in err["message"] and "b: " in err["message"]
    huge = "word " * 60_000  # ~75k tokens by any count: over both windows (16k, 8k)
    r = httpx.post(url, json={"model": "router-p", "messages": [{"role": "user", "content": huge}]}, timeout=30)
    assert r.status_code == 400, r.text[:300]
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("context_length_exceeded", "messages")
    image = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    r = httpx.post(url, json={"model": "router-p", "messages": [{"role": "user", "content": image}]}, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "unsupported_request" and "lacks vision" in r.json()["error"]["message"]


def test_loose_input_is_refused(open_gw):
    gw, _ = open_gw
    url = f"{gw.base_url}/chat/completions"
    r = httpx.post(url, json=_chat(stream="yes"), timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream", r.text
    r = httpx.post(url, json=_chat(stream_options={"include_usage": "yes"}, stream=True), timeout=10)
    assert r.status_code == 400, r.text
    raw = orjson.dumps(_chat())
    r = httpx.post(url, content=raw, timeout=10)  # no Content-Type
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type", r.text
    r = httpx.post(url, content=raw, headers={"content-type": "text/plain"}, timeout=10)
    assert r.status_code == 415, r.text
    r = httpx.post(url, content=raw, headers={"content-type": "application/json; charset=utf-8"}, timeout=10)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{gw.base_url}/completions", json={"model": "router-p", "prompt": [[]]}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt", r.text
    r = httpx.post(f"{gw.base_url}/completions", json={"model": "router-p", "prompt": [[1, 2], []]}, timeout=10)
    assert r.status_code == 400, r.text


def _metric(gw, name: str, headers: dict | None = None, **labels) -> float | None:
    text = httpx.get(f"{gw.url}/metrics", headers=headers or {}, timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_breaker_gauge_turns_half_open_without_a_call(gateway, fake_upstream):
    bad, good = fake_upstream("bad-v1"), fake_upstream("good-v1")
    cfg = {
        "upstreams": {
            "bad": upstream_entry(
                bad, retry={"attempts": 1, "backoff": 0.01}, breaker={"consecutive_failures": 1, "open_for": 1.5}
            ),
            "good": upstream_entry(good),
        },
        "policies": {"p": {"candidates": ["bad", "good"]}},
    }
    gw = gateway(cfg)
    bad.control(fail_next=1)
    assert httpx.post(f"{gw.base_url}/chat/completions", json=_chat(), timeout=10).status_code == 200
    assert _metric(gw, "shunter_circuit_state", upstream="bad") == 2.0
    wait_until(lambda: _metric(gw, "shunter_circuit_state", upstream="bad") == 1.0, 10, what="gauge half-open")
    assert bad.stats()["requests"] == 1  # no call moved it


@pytest.fixture
def auth_gw(gateway, fake_upstream):
    fake = fake_upstream("m-v1")
    cfg = {
        "server": {"auth": True, "metrics_auth": True, "admin_key": "os.environ/SHUNTER_ADMIN_KEY"},
        "upstreams": {
            "a": upstream_entry(fake, input_price=5000.0, output_price=5000.0),
            "b": upstream_entry(fake),
        },
        "policies": {"p": {"candidates": ["a", "b"]}},
    }
    gw = gateway(cfg, env={"SHUNTER_ADMIN_KEY": ADMIN})

    def key(**spec) -> str:
        r = httpx.post(f"{gw.url}/admin/keys", json=spec, headers={"x-admin-key": ADMIN}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["key"]

    return gw, key


def test_feedback_is_bound_to_the_key_that_made_the_request(auth_gw):
    gw, key = auth_gw
    alice, bob = key(name="alice"), key(name="bob")
    r = httpx.post(f"{gw.base_url}/chat/completions", json=_chat(), headers={"authorization": f"Bearer {alice}"})
    rid = r.headers["x-shunter-request-id"]
    fb = {"request_id": rid, "score": 0.0}
    other = httpx.post(f"{gw.base_url}/feedback", json=fb, headers={"authorization": f"Bearer {bob}"}, timeout=10)
    assert other.status_code == 404 and other.json()["error"]["code"] == "request_not_found"
    unknown = httpx.post(
        f"{gw.base_url}/feedback",
        json={"request_id": "req_unknown", "score": 0.0},
        headers={"authorization": f"Bearer {bob}"},
    )
    assert unknown.json()["error"]["message"].replace("req_unknown", rid) == other.json()["error"]["message"]
    own = httpx.post(f"{gw.base_url}/feedback", json=fb, headers={"authorization": f"Bearer {alice}"}, timeout=10)
    assert own.status_code == 201, own.text
    admin = httpx.post(
        f"{gw.base_url}/feedback", json={**fb, "source": "judge"}, headers={"x-admin-key": ADMIN}, timeout=10
    )
    assert admin.status_code == 201, admin.text


def test_budget_message_metrics_and_docs_with_auth_on(auth_gw):
    gw, key = auth_gw
    tiny = key(budget_usd=0.001)
    hdrs = {"authorization": f"Bearer {tiny}"}
    deadline = time.monotonic() + 20
    while True:  # the first answer costs ~$0.05 (charged after it), then the budget is spent
        r = httpx.post(f"{gw.base_url}/chat/completions", json=_chat(model="a"), headers=hdrs, timeout=10)
        if r.status_code == 402:
            break
        assert r.status_code == 200 and time.monotonic() < deadline, r.text
    msg = r.json()["error"]["message"]
    assert "of its $0.001 budget" in msg and not re.search(r"\$0\.00\b", msg), msg

    assert httpx.get(f"{gw.url}/metrics", timeout=5).status_code == 401
    assert httpx.get(f"{gw.url}/metrics", headers={"x-admin-key": ADMIN}, timeout=5).status_code == 200
    assert httpx.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {ADMIN}"}, timeout=5).status_code == 200
    assert httpx.get(f"{gw.url}/metrics", headers={"x-admin-key": "wrong"}, timeout=5).status_code == 401

    for path in ("/openapi.json", "/docs"):
        assert httpx.get(f"{gw.url}{path}", timeout=5).status_code == 401, path
        assert httpx.get(f"{gw.url}{path}", headers=hdrs, timeout=5).status_code == 200, path
        assert httpx.get(f"{gw.url}{path}", headers={"x-admin-key": ADMIN}, timeout=5).status_code == 200, path


def test_docs_public_when_the_setting_says_so(gateway, fake_upstream):
    fake = fake_upstream("m-v1")
    cfg = {
        "server": {"auth": True, "public_docs": True},
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake)},
        "policies": {"p": {"candidates": ["a", "b"]}},
    }
    gw = gateway(cfg)
    assert httpx.get(f"{gw.url}/openapi.json", timeout=5).status_code == 200
    assert httpx.post(f"{gw.base_url}/chat/completions", json=_chat(), timeout=5).status_code == 401
