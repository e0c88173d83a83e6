"""Session stickiness (in-process and Redis-shared) and the reasoning switch, through the gateway."""

from __future__ import annotations

import hashlib
import time

import pytest
import redis

from tests.support.policies import chat, outcome, processes
from tests.support.procs import upstream_entry
from tests.support.wait import wait_until

PREMIUM = {"x-shunter-tier": "premium"}


def sticky_cfg(cheap, strong, ttl: float, **server) -> dict:
    return {
        "server": server,
        "upstreams": {
            "cheap": upstream_entry(cheap),
            "strong": upstream_entry(strong, input_price=2.5, output_price=10),
        },
        "policies": {
            "chat": {
                "candidates": ["cheap", "strong"],
                "rules": [{"name": "premium", "header": {"x-shunter-tier": "premium"}, "model": "strong"}],
                "sticky": {"ttl": ttl, "key": "any"},
            }
        },
    }


def test_session_stays_on_its_first_model_for_the_ttl(gateway, fake_upstream, tmp_path):
    gw = gateway(
        sticky_cfg(
            fake_upstream("cheap-v1"), fake_upstream("strong-v1"), ttl=1.5, outcomes_path=str(tmp_path / "o.sqlite")
        )
    )
    s1 = {"x-shunter-session": "conv-1"}
    resp, h = chat(gw, "hi", headers={**s1, **PREMIUM})
    assert (resp.model, h["x-shunter-reason"]) == ("strong", "rule")
    resp, h = chat(gw, "and then?", headers=s1)  # no premium header: still strong
    assert (resp.model, h["x-shunter-reason"]) == ("strong", "sticky")
    assert outcome(tmp_path / "o.sqlite", h["x-shunter-request-id"])["reason"] == "sticky"
    # another session started on cheap stays there, even when a rule would say otherwise
    s2 = {"x-shunter-session": "conv-2"}
    assert chat(gw, "hi", headers=s2)[0].model == "cheap"
    resp, h = chat(gw, "hi", headers={**s2, **PREMIUM})
    assert (resp.model, h["x-shunter-reason"]) == ("cheap", "sticky")
    # the OpenAI `user` field is a session key too; extra_body shunter.session as well
    assert chat(gw, "hi", headers=PREMIUM, user="alice")[0].model == "strong"
    assert chat(gw, "hi", user="alice")[1]["x-shunter-reason"] == "sticky"
    assert chat(gw, "hi", headers=PREMIUM, extra_body={"shunter": {"session": "conv-3"}})[0].model == "strong"
    assert chat(gw, "hi", extra_body={"shunter": {"session": "conv-3"}})[0].model == "strong"
    # no key: no stickiness
    assert chat(gw, "hi")[1]["x-shunter-reason"] == "static"
    # a candidates override that excludes the pinned model re-decides and re-pins
    resp, h = chat(gw, "hi", headers={**s1, "x-shunter-candidates": "cheap"})
    assert (resp.model, h["x-shunter-reason"]) == ("cheap", "static")
    assert chat(gw, "hi", headers=s1)[1]["x-shunter-reason"] == "sticky"


def test_after_the_ttl_the_session_is_decided_afresh(gateway, fake_upstream, redis_server):
    """The TTL slides from the last request; its expiry is watched in Redis (reading the key there
    does not slide it, as a request would)."""
    gw = gateway(sticky_cfg(fake_upstream("cheap-v1"), fake_upstream("strong-v1"), ttl=1.5, redis_url=redis_server))
    session = f"ttl-conv-{time.time_ns()}"
    s = {"x-shunter-session": session}
    assert chat(gw, "hi", headers=s)[0].model == "cheap"
    assert chat(gw, "hi", headers={**s, **PREMIUM})[1]["x-shunter-reason"] == "sticky"
    key = "shunter:sticky:chat:" + hashlib.sha256(session.encode()).hexdigest()[:32]
    r = redis.Redis.from_url(redis_server)
    assert r.exists(key) and 0 < r.pttl(key) <= 1500
    wait_until(lambda: not r.exists(key), timeout=10, what="the sticky entry expired")
    resp, h = chat(gw, "hi", headers={**s, **PREMIUM})
    assert (resp.model, h["x-shunter-reason"]) == ("strong", "rule")


def test_sessions_are_shared_across_replicas_through_redis(gateway, fake_upstream, redis_server):
    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    a = gateway(sticky_cfg(cheap, strong, ttl=60, redis_url=redis_server))
    b = gateway(sticky_cfg(cheap, strong, ttl=60, redis_url=redis_server))
    sess = {"x-shunter-session": f"redis-conv-{time.time()}"}
    assert chat(a, "hi", headers={**sess, **PREMIUM})[0].model == "strong"
    resp, h = chat(b, "next turn", headers=sess)
    assert (resp.model, h["x-shunter-reason"]) == ("strong", "sticky")


@pytest.fixture(scope="module")
def reasoning_gw(tmp_path_factory):
    with processes(tmp_path_factory.mktemp("reasoning")) as (fake_upstream, gateway):
        mini, thinker = fake_upstream("mini-v1"), fake_upstream("thinker-v1")
        cfg = {
            "upstreams": {
                "mini": upstream_entry(mini),
                "thinker": upstream_entry(thinker, capabilities=["streaming", "tools", "json_mode", "reasoning"]),
            },
            "policies": {
                "chat": {
                    "candidates": ["mini", "thinker"],
                    "rules": [
                        {
                            "name": "proofs",
                            "keywords": ["prove", "derive"],
                            "model": "thinker",
                            "reasoning_effort": "high",
                        },
                        {"name": "deep", "header": {"x-depth": "deep"}, "reasoning_effort": "low"},
                    ],
                },
                "think": {
                    "candidates": ["thinker", "mini"],
                    "rules": [{"name": "deep", "header": {"x-depth": "deep"}, "reasoning_effort": "medium"}],
                },
            },
        }
        gw = gateway(cfg)
        gw.mini, gw.thinker = mini, thinker
        yield gw


def test_rule_switches_to_a_reasoning_model_with_effort(reasoning_gw):
    gw = reasoning_gw
    resp, h = chat(gw, "prove that 17 is prime")
    assert resp.model == "thinker" and h["x-shunter-reasoning-effort"] == "high"
    assert gw.thinker.last()["reasoning_effort"] == "high"
    resp, h = chat(gw, "hello")
    assert resp.model == "mini" and "x-shunter-reasoning-effort" not in h
    assert "reasoning_effort" not in gw.mini.last()


def test_effort_only_rule_applies_to_reasoning_models_only(reasoning_gw):
    gw = reasoning_gw
    resp, h = chat(gw, "hello", model="router-think", headers={"x-depth": "deep"})
    assert resp.model == "thinker" and h["x-shunter-reasoning-effort"] == "medium"
    assert gw.thinker.last()["reasoning_effort"] == "medium"
    resp, h = chat(gw, "hello", headers={"x-depth": "deep"})  # chat picks mini, which cannot reason
    assert resp.model == "mini" and "x-shunter-reasoning-effort" not in h
    assert "reasoning_effort" not in gw.mini.last()


def test_client_reasoning_effort_is_never_replaced(reasoning_gw):
    gw = reasoning_gw
    resp, h = chat(gw, "prove it", reasoning_effort="low")
    assert resp.model == "thinker" and "x-shunter-reasoning-effort" not in h
    assert gw.thinker.last()["reasoning_effort"] == "low"
