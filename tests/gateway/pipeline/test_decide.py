"""``pipeline.decide`` in process, on a runtime built from a real policy file (no upstream calls)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.errors import APIError
from gateway.pipeline.decide import Inputs, decide, policy_text
from gateway.policy.engine import Decision, full_prompt_text, resolve_model
from gateway.policy.loader import load_config
from gateway.protocol import ChatCompletionRequest
from gateway.runtime import Runtime, build_clients, build_policies
from gateway.state import InProcessState

DEAD = "http://127.0.0.1:9/v1"  # never called: deciding makes no upstream call


def up(window: int = 16000, caps: list[str] | None = None, price: float = 1.0) -> dict:
    return {
        "base_url": DEAD,
        "context_window": window,
        "capabilities": caps or ["streaming"],
        "input_price": price,
        "output_price": price,
    }


CFG: dict[str, Any] = {
    "upstreams": {
        "a": up(caps=["streaming", "reasoning"], price=0.1),
        "b": up(price=5.0),
        "c": up(price=1.0),
        "tiny": up(window=10),
        "tiny2": up(window=10),
    },
    "policies": {
        "chat": {
            "candidates": ["a", "b"],
            "fallbacks": ["c"],
            "sticky": {"ttl": 60},
            "rules": [
                {"name": "premium", "header": {"x-tier": "premium"}, "model": "b"},
                {"name": "hand", "keywords": ["handover"], "policy": "other"},
                {"name": "think", "keywords": ["prove"], "reasoning_effort": "high"},
            ],
        },
        "other": {"candidates": ["c", "b"]},
        "small": {"candidates": ["tiny", "tiny2"]},
    },
}


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(CFG))
    cfg = load_config(path)
    return Runtime(cfg, path, build_clients(cfg, {}), build_policies(cfg, path.parent), None)


def run_decide(rt: Runtime, text: str, model: str = "router-chat", shared: Any = None, **headers: str) -> Decision:
    req = ChatCompletionRequest.model_validate({"model": model, "messages": [{"role": "user", "content": text}]})
    target = resolve_model(rt, req.model, headers.get("x-shunter-policy"))
    mode = rt.policies[target.policy].cfg.embed if target.policy else "last_user"
    inp = Inputs(rt, req, policy_text(req, mode), headers, rt.count_tokens(full_prompt_text(req)), shared)
    return asyncio.run(decide(inp, target))


def test_no_rule_keeps_the_policy_order_then_the_fallbacks(rt):
    d = run_decide(rt, "hello")
    assert (d.policy, d.model, d.reason, d.ranking) == ("chat", "a", "static", ["a", "b", "c"])


def test_a_header_rule_picks_its_model_first(rt):
    d = run_decide(rt, "hello", **{"x-tier": "premium"})
    assert (d.model, d.reason, d.ranking) == ("b", "rule", ["b", "a", "c"])
    assert "rule 'premium'" in d.detail


def test_a_rule_hands_the_request_to_another_policy(rt):
    d = run_decide(rt, "please handover")
    assert (d.policy, d.model, d.reason) == ("other", "c", "rule")
    assert "-> policy 'other'" in d.detail


def test_an_effort_only_rule_sets_the_effort_and_lets_the_later_stages_pick(rt):
    d = run_decide(rt, "prove it")
    assert (d.model, d.reasoning_effort) == ("a", "high")  # a can reason: the effort is kept


def test_a_session_stays_on_its_first_model(rt):
    shared = InProcessState()
    first = run_decide(rt, "hi", shared=shared, **{"x-tier": "premium", "x-shunter-session": "s1"})
    again = run_decide(rt, "hi", shared=shared, **{"x-shunter-session": "s1"})
    other = run_decide(rt, "hi", shared=shared, **{"x-shunter-session": "s2"})
    assert (first.model, again.model, again.reason) == ("b", "b", "sticky")
    assert (other.model, other.reason) == ("a", "static")


def test_a_candidates_override_restricts_the_choice(rt):
    d = run_decide(rt, "hi", **{"x-shunter-candidates": "b"})
    assert d.model == "b" and "a" not in d.ranking


def test_passthrough_is_the_named_model_alone(rt):
    d = run_decide(rt, "hi", model="c")
    assert (d.policy, d.model, d.ranking, d.reason) == (None, "c", ["c"], "passthrough")


def test_a_request_no_candidate_could_ever_serve_is_a_400(rt):
    with pytest.raises(APIError) as ei:
        run_decide(rt, "a prompt far longer than ten tokens " * 5, model="router-small")
    assert ei.value.status == 400


def test_unavailable_candidates_fall_back_then_503(rt):
    for name in ("a", "b"):
        rt.clients[name].breaker.cool_down(60)
    d = run_decide(rt, "hi")
    assert (d.model, d.reason) == ("c", "fallback") and set(d.skipped) == {"a", "b"}
    rt.clients["c"].breaker.cool_down(60)
    with pytest.raises(APIError) as ei:
        run_decide(rt, "hi")
    assert (ei.value.status, ei.value.code) == (503, "no_candidate_available")
