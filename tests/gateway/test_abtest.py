"""The shadow A/B comparison and its paired-bootstrap bound on constructed judged requests
whose answers are known by construction (``gateway.learning.abtest``)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.learning import abtest
from gateway.outcomes.record import Feedback, Outcome

PRICE = {"weak": 1e-6, "strong": 1e-5}  # USD per request, flat: the cost is known per pick


def reqs(scores: list[dict[str, float]]) -> list[abtest.JudgedRequest]:
    return [abtest.JudgedRequest(f"r{i}", np.ones(4, np.float32), s, 100, 20) for i, s in enumerate(scores)]


def cost(model: str, _r: abtest.JudgedRequest) -> float:
    return PRICE[model]


def test_better_at_equal_cost_passes_with_the_known_mean_and_bound():
    # 100 requests; on 20 the candidate picks a model the judge scored 1 where the deployed one got 0
    rs = reqs([{"a": 1.0, "b": 0.0}] * 20 + [{"a": 1.0, "b": 1.0}] * 80)
    cur = ["b"] * 20 + ["a"] * 80
    new = ["a"] * 100
    price = {"a": 1e-6, "b": 1e-6}
    ab = abtest.compare(rs, cur, new, lambda m, r: price[m])
    assert ab["requests"] == 100 and ab["changed"] == 20
    assert ab["quality_diff"]["mean"] == pytest.approx(0.2)
    # Bernoulli(0.2) differences: sd of the mean 0.04, one-sided 95% lower bound ~ 0.2 - 1.645 * 0.04
    assert ab["quality_diff"]["lower"] == pytest.approx(0.2 - 1.645 * 0.04, abs=0.015)
    assert ab["cost_diff_usd"]["mean"] == 0.0 and ab["cost_diff_usd"]["upper"] == 0.0
    assert ab["routers"]["current"]["quality"] == pytest.approx(0.8)
    assert ab["routers"]["candidate"]["picks"] == {"a": 100, "b": 0}
    assert ab["passed"] and "better at equal or lower cost" in ab["reason"]


def test_identical_choices_are_not_better():
    rs = reqs([{"weak": 0.5, "strong": 1.0}] * 50)
    ab = abtest.compare(rs, ["weak"] * 50, ["weak"] * 50, cost)
    assert ab["quality_diff"] == {"mean": 0.0, "lower": 0.0, "upper": 0.0}
    assert not ab["passed"] and "not better beyond the bound" in ab["reason"]


def test_better_but_dearer_is_refused():
    rs = reqs([{"weak": 0.0, "strong": 1.0}] * 40)
    ab = abtest.compare(rs, ["weak"] * 40, ["strong"] * 40, cost)
    assert ab["quality_diff"]["lower"] == 1.0
    assert ab["cost_diff_usd"]["mean"] == pytest.approx(9e-6)
    assert not ab["passed"] and "costs more" in ab["reason"]


def test_cheaper_with_a_noisy_gain_inside_the_bound_is_refused():
    # the candidate wins 11 and loses 9 of 20 changed picks: mean +0.02, lower bound below zero
    rs = reqs(
        [{"weak": 1.0, "strong": 0.0}] * 11 + [{"weak": 0.0, "strong": 1.0}] * 9 + [{"weak": 1, "strong": 1}] * 80
    )
    ab = abtest.compare(rs, ["strong"] * 100, ["weak"] * 20 + ["strong"] * 80, cost)
    assert ab["quality_diff"]["mean"] == pytest.approx(0.02)
    assert ab["quality_diff"]["lower"] < 0 < ab["quality_diff"]["upper"]
    assert ab["cost_diff_usd"]["mean"] < 0 and not ab["passed"]


def test_too_few_judged_requests_never_pass():
    rs = reqs([{"weak": 0.0, "strong": 1.0}] * 5)
    ab = abtest.compare(rs, ["weak"] * 5, ["strong"] * 5, lambda m, r: 0.0)
    assert ab["quality_diff"]["lower"] == 1.0 and not ab["passed"] and "only 5 judged" in ab["reason"]
    assert abtest.compare([], [], [], cost)["passed"] is False


def test_the_bootstrap_is_paired_and_seeded():
    diff = np.array([1.0, -1.0] * 10)
    a, b = abtest.paired_bootstrap(diff, 500, seed=3), abtest.paired_bootstrap(diff, 500, seed=3)
    assert np.array_equal(a, b) and abs(a.mean()) < 0.05


def test_judge_scores_and_judged_requests_from_feedback_items():
    emb = np.array([3.0, 4.0], np.float16).tobytes()
    outs = [
        Outcome(request_id="x", ts=1.0, served="weak", embedding=emb, prompt_tokens=12, completion_tokens=7),
        Outcome(request_id="y", ts=2.0, served="weak", embedding=emb),
        Outcome(request_id="z", ts=3.0, served="weak"),
    ]
    items = {
        "x": [
            Feedback(request_id="x", source="judge", score=0.0, ts=1.0),
            Feedback(request_id="x", source="judge@strong", score=1.0, ts=1.0),
            Feedback(request_id="x", source="user", score=1.0, ts=1.0),
        ],
        "y": [Feedback(request_id="y", source="judge", score=1.0, ts=1.0)],  # one model only: no counterfactual
        "z": [
            Feedback(request_id="z", source="judge", score=0.0, ts=1.0),
            Feedback(request_id="z", source="judge@s", score=1, ts=1.0),
        ],
    }
    got = abtest.judged_requests(outs, items)
    assert [r.request_id for r in got] == ["x"]
    assert got[0].scores == {"weak": 0.0, "strong": 1.0}
    assert (got[0].prompt_tokens, got[0].completion_tokens) == (12, 7)
    assert np.allclose(got[0].emb, [0.6, 0.8])


def test_table_rows_show_both_routers_and_the_difference():
    rs = reqs([{"weak": 1.0, "strong": 1.0}] * 30)
    ab = abtest.compare(rs, ["strong"] * 30, ["weak"] * 30, cost)
    rows = abtest.table_rows(ab)
    assert [r[0] for r in rows] == ["current", "candidate", "candidate - current"]
    assert rows[2][3] == "30 of 30 picks changed"


def test_an_ab_that_was_not_computed_prints_one_line_not_an_empty_table(capsys):
    from gateway.learning.cli import print_ab

    print_ab({}, None)
    assert capsys.readouterr().out == "shadow A/B: not computed\n"
    print_ab({"reason": "3 judged held-back requests < --min-judged 20"}, None)
    assert capsys.readouterr().out == "shadow A/B: not computed: 3 judged held-back requests < --min-judged 20\n"
