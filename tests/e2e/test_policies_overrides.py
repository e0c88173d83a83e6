"""Per-request control through a running gateway: model suffix, headers, extra_body; ranges → 400."""

from __future__ import annotations

import openai
import pytest

from tests.support.policies import chat, client, processes
from tests.support.procs import upstream_entry


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with processes(tmp_path_factory.mktemp("overrides")) as (fake_upstream, gateway):
        cheap, strong, mid = fake_upstream("cheap-v1"), fake_upstream("strong-v1"), fake_upstream("mid-v1")
        cfg = {
            "upstreams": {
                "cheap": upstream_entry(cheap, input_price=0.15, output_price=0.6),
                "mid": upstream_entry(mid, input_price=1.0, output_price=4.0),
                "strong": upstream_entry(strong, input_price=2.5, output_price=10.0),
            },
            "policies": {
                "chat": {
                    "candidates": ["cheap", "mid", "strong"],
                    "threshold_range": [0.2, 0.8],
                    "cost_weight_range": [0.0, 5.0],
                },
                "locked": {"candidates": ["strong", "cheap"], "allow_overrides": False},
            },
        }
        yield gateway(cfg)


def bad(gw, **kw) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as e:
        client(gw).chat.completions.create(
            messages=[{"role": "user", "content": "hi"}], **{"model": "router-chat", **kw}
        )
    return e.value


def test_in_range_overrides_are_accepted(gw):
    assert chat(gw, "hi", model="router-chat-0.5")[0].model == "cheap"
    assert chat(gw, "hi", headers={"x-shunter-threshold": "0.3"})[0].model == "cheap"
    assert chat(gw, "hi", headers={"x-shunter-cost-weight": "2"})[0].model == "cheap"
    assert chat(gw, "hi", extra_body={"shunter": {"threshold": 0.8, "cost_weight": 0}})[0].model == "cheap"


def test_threshold_out_of_range(gw):
    e = bad(gw, model="router-chat-0.95")
    assert e.status_code == 400
    assert e.body["message"] == "Threshold 0.95 is outside policy 'chat' allowed range [0.2, 0.8]."
    assert e.body["code"] == "override_out_of_range" and e.body["param"] == "threshold"
    e = bad(gw, extra_headers={"x-shunter-threshold": "0.1"})
    assert e.body["message"] == "Threshold 0.1 is outside policy 'chat' allowed range [0.2, 0.8]."
    e = bad(gw, extra_body={"shunter": {"threshold": 0.9}})
    assert "outside policy 'chat' allowed range [0.2, 0.8]" in e.body["message"]


def test_cost_weight_out_of_range_and_not_a_number(gw):
    e = bad(gw, extra_headers={"x-shunter-cost-weight": "7"})
    assert e.body["message"] == "Cost weight 7.0 is outside policy 'chat' allowed range [0.0, 5.0]."
    e = bad(gw, extra_body={"shunter": {"cost_weight": -1}})
    assert e.body["param"] == "cost_weight"
    e = bad(gw, extra_headers={"x-shunter-threshold": "high"})
    assert e.body["message"] == "Header x-shunter-threshold must be a number, got 'high'."
    e = bad(gw, extra_body={"shunter": {"max_cost_per_request": 0}})
    assert e.body["message"] == "max_cost_per_request must be positive."


def test_candidates_subset(gw):
    resp, h = chat(gw, "hi", headers={"x-shunter-candidates": "strong, mid"})
    assert resp.model == "mid"  # policy order among the allowed ones
    resp, h = chat(gw, "hi", extra_body={"shunter": {"candidates": ["strong"]}})
    assert resp.model == "strong"
    e = bad(gw, extra_headers={"x-shunter-candidates": "strong,gpt-5"})
    assert e.body["message"] == (
        "Candidates override must be a non-empty subset of policy 'chat' candidates (cheap, mid, strong); not allowed: gpt-5."
    )
    e = bad(gw, extra_body={"shunter": {"candidates": []}})
    assert "not allowed: (empty)" in e.body["message"]


def test_policy_selection_and_locked_policy(gw):
    resp, h = chat(gw, "hi", headers={"x-shunter-policy": "locked"})
    assert resp.model == "strong" and h["x-shunter-policy"] == "locked"
    resp, h = chat(gw, "hi", model="router-chat", extra_body={"shunter": {"policy": "locked"}})
    assert h["x-shunter-policy"] == "locked"
    e = bad(gw, model="router-locked", extra_headers={"x-shunter-threshold": "0.5"})
    assert e.body["message"] == "Policy 'locked' does not allow per-request overrides."
    with pytest.raises(openai.NotFoundError) as nf:
        chat(gw, "hi", headers={"x-shunter-policy": "nope"})
    assert nf.value.body["message"] == "Unknown policy 'nope' in x-shunter-policy."


def test_unknown_shunter_field_is_a_400(gw):
    e = bad(gw, extra_body={"shunter": {"treshold": 0.5}})
    assert e.status_code == 400 and "treshold" in e.body["message"]
