"""Rules (regex, keywords, header, metadata, token count) through a running gateway."""

from __future__ import annotations

import pytest

from tests.support.policies import chat, outcome, processes
from tests.support.procs import upstream_entry


@pytest.fixture(scope="module")
def procs(tmp_path_factory):
    with processes(tmp_path_factory.mktemp("rules")) as p:
        yield p


@pytest.fixture(scope="module")
def gw(procs):
    fake_upstream, gateway = procs
    cheap, strong, code = fake_upstream("cheap-v1"), fake_upstream("strong-v1"), fake_upstream("code-v1")
    cfg = {
        "upstreams": {
            "cheap": upstream_entry(cheap, input_price=0.15, output_price=0.6),
            "strong": upstream_entry(strong, input_price=2.5, output_price=10.0),
            # the code model: no tools, a small context window
            "code": upstream_entry(code, capabilities=["streaming"], context_window=120),
        },
        "policies": {
            "chat": {
                "candidates": ["cheap", "strong"],
                "rules": [
                    {"name": "premium", "header": {"x-shunter-tier": "premium"}, "model": "strong"},
                    {"name": "gold", "metadata": {"tier": ["gold", "platinum"]}, "model": "strong"},
                    {"name": "code", "keywords": ["python", "rust code"], "model": "code"},
                    {"name": "sql", "regex": r"(?i)\bselect\b.+\bfrom\b", "model": "code"},
                    {"name": "long", "min_tokens": 60, "policy": "big"},
                ],
            },
            "big": {"candidates": ["strong", "cheap"]},
        },
    }
    return gateway(cfg)


def test_no_rule_matches_uses_policy_order(gw):
    resp, h = chat(gw, "hello there")
    assert resp.model == "cheap" and h["x-shunter-reason"] == "static"


def test_header_rule(gw):
    resp, h = chat(gw, "hello there", headers={"X-Shunter-Tier": "premium"})
    assert resp.model == "strong"
    assert h["x-shunter-reason"] == "rule"
    row = outcome(gw.db, h["x-shunter-request-id"])
    assert row["reason"] == "rule" and row["chosen"] == "strong" and "premium" in row["detail"]
    resp, h = chat(gw, "hello there", headers={"X-Shunter-Tier": "basic"})
    assert resp.model == "cheap"


def test_metadata_rule(gw):
    resp, h = chat(gw, "hello", metadata={"tier": "platinum"})
    assert (resp.model, h["x-shunter-reason"]) == ("strong", "rule")
    resp, h = chat(gw, "hello", metadata={"tier": "bronze"})
    assert (resp.model, h["x-shunter-reason"]) == ("cheap", "static")


def test_keyword_and_regex_rules(gw):
    resp, h = chat(gw, "Write PYTHON to sort a list")
    assert (resp.model, h["x-shunter-reason"]) == ("code", "rule")
    assert "rule 'code'" in outcome(gw.db, h["x-shunter-request-id"])["detail"]
    resp, h = chat(gw, "pythonic is not a keyword match")
    assert resp.model == "cheap"
    resp, h = chat(gw, "select name from users where id = 3")
    assert (resp.model, h["x-shunter-reason"]) == ("code", "rule")
    assert "rule 'sql'" in outcome(gw.db, h["x-shunter-request-id"])["detail"]


def test_rule_target_still_filtered_by_capabilities_and_context(gw):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    resp, h = chat(gw, "python please", tools=tools)
    assert resp.model == "cheap" and h["x-shunter-reason"] == "static"  # code lacks tools
    # ~40 tokens + max_tokens 100 exceed code's 120-token window (below the 60-token rule)
    resp, h = chat(gw, "python " + "word " * 30, max_tokens=100)
    assert resp.model == "cheap"


def test_token_count_rule_hands_over_to_another_policy(gw):
    resp, h = chat(gw, "tell me " + "more and more " * 40)
    assert resp.model == "strong"
    assert h["x-shunter-reason"] == "rule" and h["x-shunter-policy"] == "big"
    row = outcome(gw.db, h["x-shunter-request-id"])
    assert row["reason"] == "rule" and "policy 'big'" in row["detail"]


def test_token_count_counts_every_message(gw):
    """The long conversation trips the token rule even though the last message is short."""
    from tests.support.policies import client

    msgs = [
        {"role": "user", "content": "context " * 80},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and?"},
    ]
    raw = client(gw).chat.completions.with_raw_response.create(model="router-chat", messages=msgs)
    assert raw.headers["x-shunter-policy"] == "big" and raw.parse().model == "strong"


def test_completions_endpoint_uses_rules_too(gw):
    from tests.support.policies import client

    raw = client(gw).completions.with_raw_response.create(model="router-chat", prompt="def f(): pass  # python")
    assert raw.headers["x-shunter-reason"] == "rule" and raw.parse().model == "code"


@pytest.fixture(scope="module")
def caps_gw(procs):
    fake_upstream, gateway = procs
    plain, seeing = fake_upstream("plain-v1"), fake_upstream("seeing-v1")
    cfg = {
        "upstreams": {
            "plain": upstream_entry(plain, capabilities=["streaming"], context_window=200),
            "seeing": upstream_entry(seeing, capabilities=["streaming", "vision", "json_mode"]),
        },
        "policies": {
            "chat": {"candidates": ["plain", "seeing"]},
            "only-plain": {"candidates": ["plain", "seeing"]},
        },
    }
    return gateway(cfg)


def test_capability_and_context_filters(caps_gw):
    from tests.support.policies import client

    gw = caps_gw
    assert chat(gw, "hi")[0].model == "plain"
    image = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    raw = client(gw).chat.completions.with_raw_response.create(
        model="router-chat", messages=[{"role": "user", "content": image}]
    )
    assert raw.parse().model == "seeing"
    assert chat(gw, "give json", response_format={"type": "json_object"})[0].model == "seeing"
    assert chat(gw, "long " * 300)[0].model == "seeing"  # ~375 tokens > plain's 200-token window


def test_no_candidate_that_could_ever_serve_is_a_400_naming_why(caps_gw):
    # no candidate has the capability the request needs: a client error (the SDK must not retry it)
    import openai

    from tests.support.policies import client

    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    with pytest.raises(openai.BadRequestError) as e:
        client(caps_gw).chat.completions.create(
            model="router-chat", messages=[{"role": "user", "content": "hi"}], tools=tools
        )
    assert e.value.status_code == 400
    assert (
        e.value.body["message"]
        == "No candidate of policy 'chat' can serve this request as written: plain: lacks tools; seeing: lacks tools."
    )
