"""Response headers that say what decided: the rule or semantic route, no empty policy on
passthrough, and a clear 503 (no network call) for a concrete model whose key is not set."""

from __future__ import annotations

import httpx
import openai

from tests.support.procs import upstream_entry

UNSET = "SHUNTER_TEST_KEY_NEVER_SET"


def post(gw, model: str, text: str = "hi", headers: dict | None = None) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        headers=headers or {},
        timeout=30,
    )


def test_rule_route_and_passthrough_headers(fake_upstream, gateway):
    a, b = fake_upstream("a-model"), fake_upstream("b-model")
    cfg = {
        "upstreams": {"a": upstream_entry(a), "b": upstream_entry(b)},
        "policies": {
            "chat": {
                "candidates": ["a", "b"],
                "rules": [{"name": "tickets", "keywords": ["invoice"], "model": "b"}],
                "semantic_routes": [
                    {
                        "name": "maths",
                        "model": "b",
                        "threshold": 0.6,
                        "utterances": ["solve this quadratic equation", "integrate x squared"],
                    }
                ],
            }
        },
    }
    gw = gateway(cfg)
    r = post(gw, "router-chat", "where is my invoice?")
    assert r.status_code == 200, r.text
    assert (r.headers["x-shunter-reason"], r.headers["x-shunter-rule"]) == ("rule", "tickets")
    assert "x-shunter-route" not in r.headers
    r = post(gw, "router-chat", "solve this quadratic equation: x^2 - 5x + 6 = 0")
    assert r.status_code == 200, r.text
    assert (r.headers["x-shunter-reason"], r.headers["x-shunter-route"]) == ("semantic", "maths")
    assert "x-shunter-rule" not in r.headers
    r = post(gw, "router-chat", "hello there")
    assert r.headers["x-shunter-reason"] == "static"
    assert "x-shunter-rule" not in r.headers and "x-shunter-route" not in r.headers
    # a concrete model: no policy decided, so no (empty) policy header
    r = post(gw, "a")
    assert r.status_code == 200, r.text
    assert r.headers["x-shunter-reason"] == "passthrough"
    assert "x-shunter-policy" not in r.headers
    # streamed too
    c = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    with c.chat.completions.with_streaming_response.create(
        model="router-chat", messages=[{"role": "user", "content": "my invoice is wrong"}], stream=True
    ) as s:
        assert s.headers["x-shunter-rule"] == "tickets"
        assert "".join(s.iter_lines())


def test_concrete_model_without_its_key_is_a_clear_503(fake_upstream, gateway):
    keyed = fake_upstream("keyed-model")
    cfg = {
        "upstreams": {
            "keyed": upstream_entry(keyed, api_key=f"os.environ/{UNSET}"),
            "free": upstream_entry(fake_upstream("free-model")),
        },
        "policies": {"chat": {"candidates": ["keyed", "free"]}},
    }
    gw = gateway(cfg, env={UNSET: ""})
    before = keyed.stats()["requests"]
    for _ in range(6):  # as many as would open a breaker, had the gateway tried the network
        r = post(gw, "keyed")
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["message"] == f"Model 'keyed' is unavailable: {UNSET} is not set."
        assert err["code"] == "model_unavailable" and err["param"] == "model"
    assert keyed.stats()["requests"] == before  # no network attempt
    ready = httpx.get(f"{gw.url}/readyz", timeout=5).json()
    assert ready["upstreams"]["keyed"] == f"{UNSET} is not set"  # not 'circuit open'
    r = post(gw, "router-chat")  # the routed path skips it, as before
    assert r.status_code == 200 and r.headers["x-shunter-model"] == "free"
