"""Rules (regex, keywords, header, metadata, token count) through a running gateway."""

from __future__ import annotations

import pytest

from tests.conftest import upstream_entry
from tests.e2e.policy_util import chat, outcome


@pytest.fixture
def gw(gateway, fake_upstream, tmp_path):
    cheap, strong, code = fake_upstream("cheap-v1"), fake_upstream("strong-v1"), fake_upstream("code-v1")
    cfg = {
        "server": {"outcomes_path": str(tmp_path / "out.sqlite")},
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
                    {"name": "premium", "header": {"x-switchyard-tier": "premium"}, "model": "strong"},
                    {"name": "gold", "metadata": {"tier": ["gold", "platinum"]}, "model": "strong"},
                    {"name": "code", "keywords": ["python", "rust code"], "model": "code"},
                    {"name": "sql", "regex": r"(?i)\bselect\b.+\bfrom\b", "model": "code"},
                    {"name": "long", "min_tokens": 60, "policy": "big"},
                ],
            },
            "big": {"candidates": ["strong", "cheap"]},
        },
    }
    g = gateway(cfg)
    g.db = tmp_path / "out.sqlite"
    return g


def test_no_rule_matches_uses_policy_order(gw):
    resp, h = chat(gw, "hello there")
    assert resp.model == "cheap" and h["x-switchyard-reason"] == "static"


def test_header_rule(gw):
    resp, h = chat(gw, "hello there", headers={"X-Switchyard-Tier": "premium"})
    assert resp.model == "strong"
    assert h["x-switchyard-reason"] == "rule"
    row = outcome(gw.db, h["x-switchyard-request-id"])
    assert row["reason"] == "rule" and row["chosen"] == "strong" and "premium" in row["detail"]
    resp, h = chat(gw, "hello there", headers={"X-Switchyard-Tier": "basic"})
    assert resp.model == "cheap"


def test_metadata_rule(gw):
    resp, h = chat(gw, "hello", metadata={"tier": "platinum"})
    assert (resp.model, h["x-switchyard-reason"]) == ("strong", "rule")
    resp, h = chat(gw, "hello", metadata={"tier": "bronze"})
    assert (resp.model, h["x-switchyard-reason"]) == ("cheap", "static")


def test_keyword_and_regex_rules(gw):
    resp, h = chat(gw, "Write PYTHON to sort a list")
    assert (resp.model, h["x-switchyard-reason"]) == ("code", "rule")
    assert "rule 'code'" in outcome(gw.db, h["x-switchyard-request-id"])["detail"]
    resp, h = chat(gw, "pythonic is not a keyword match")
    assert resp.model == "cheap"
    resp, h = chat(gw, "select name from users where id = 3")
    assert (resp.model, h["x-switchyard-reason"]) == ("code", "rule")
    assert "rule 'sql'" in outcome(gw.db, h["x-switchyard-request-id"])["detail"]


def test_rule_target_still_filtered_by_capabilities_and_context(gw):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    resp, h = chat(gw, "python please", tools=tools)
    assert resp.model == "cheap" and h["x-switchyard-reason"] == "static"  # code lacks tools
    # ~40 tokens + max_tokens 100 exceed code's 120-token window (below the 60-token rule)
    resp, h = chat(gw, "python " + "word " * 30, max_tokens=100)
    assert resp.model == "cheap"


def test_token_count_rule_hands_over_to_another_policy(gw):
    resp, h = chat(gw, "tell me " + "more and more " * 40)
    assert resp.model == "strong"
    assert h["x-switchyard-reason"] == "rule" and h["x-switchyard-policy"] == "big"
    row = outcome(gw.db, h["x-switchyard-request-id"])
    assert row["reason"] == "rule" and "policy 'big'" in row["detail"]


def test_token_count_counts_every_message(gw):
    """The long conversation trips the token rule even though the last message is short."""
    from tests.e2e.policy_util import client

    msgs = [{"role": "user", "content": "context " * 80}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "and?"}]
    raw = client(gw).chat.completions.with_raw_response.create(model="router-chat", messages=msgs)
    assert raw.headers["x-switchyard-policy"] == "big" and raw.parse().model == "strong"
