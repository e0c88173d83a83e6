"""routers.decision.choose: the one decision function shared by gateway and evaluation."""

from __future__ import annotations

import pytest

from routers.decision import Objective, choose, expected_cost

Q = {"cheap": 0.60, "mid": 0.75, "strong": 0.90}
C = {"cheap": 0.0001, "mid": 0.001, "strong": 0.01}


def test_pair_threshold_uses_strong_win():
    q = {"weak": 0.6, "strong": 0.8}
    assert choose(q, {}, Objective("threshold", 0.5), strong="strong", weak="weak", strong_win=0.7).model == "strong"
    ch = choose(q, {}, Objective("threshold", 0.5), strong="strong", weak="weak", strong_win=0.3)
    assert ch.model == "weak" and ch.ranking == ("weak", "strong")


def test_multi_model_threshold_picks_cheapest_good_enough():
    assert choose(Q, C, Objective("threshold", 0.7)).model == "mid"
    assert choose(Q, C, Objective("threshold", 0.5)).model == "cheap"
    assert choose(Q, C, Objective("threshold", 0.95)).model == "strong"  # none qualifies: best


@pytest.mark.parametrize("lam,expected", [(0.0, "strong"), (0.1, "strong"), (0.5, "mid"), (5.0, "cheap")])
def test_cost_weight_trades_quality_for_normalised_cost(lam, expected):
    assert choose(Q, C, Objective("cost_weight", lam)).model == expected


def test_max_cost_per_request():
    assert choose(Q, C, Objective("max_cost_per_request", 0.002)).model == "mid"
    ch = choose(Q, C, Objective("max_cost_per_request", 0.00001))
    assert ch.model == "cheap" and "cheapest" in ch.reason


def test_ranking_lists_every_candidate_once_best_first():
    ch = choose(Q, C, Objective("cost_weight", 0.5))
    assert sorted(ch.ranking) == sorted(Q) and ch.ranking[0] == ch.model


def test_expected_cost():
    assert expected_cost(1000, 2.5, 10.0, 200) == pytest.approx((1000 * 2.5 + 200 * 10) / 1e6)


def test_empty_candidates_rejected():
    with pytest.raises(ValueError):
        choose({}, {}, Objective("threshold", 0.5))


def test_margin_is_the_distance_to_flipping_the_choice():
    """What a tiered policy compares with its band (gateway.policy.tiers)."""
    q = {"weak": 0.6, "strong": 0.8}
    pair = choose(q, {}, Objective("threshold", 0.5), strong="strong", weak="weak", strong_win=0.53)
    assert pair.margin == pytest.approx(0.03)
    # many models, threshold: the nearest crossing among the pick and the cheaper ones
    assert choose(Q, C, Objective("threshold", 0.7)).margin == pytest.approx(0.05)  # mid is 0.05 above
    # cost_weight: the pick's utility lead over the runner-up
    ch = choose(Q, C, Objective("cost_weight", 0.5))
    top = max(C.values())
    u = {m: Q[m] - 0.5 * C[m] / top for m in Q}
    assert ch.margin == pytest.approx(u["mid"] - max(u["cheap"], u["strong"]))
    # max cost: the quality lead among the models within budget; nothing to flip with one
    assert choose(Q, C, Objective("max_cost_per_request", 0.002)).margin == pytest.approx(0.15)
    assert choose(Q, C, Objective("max_cost_per_request", 0.0005)).margin == float("inf")
