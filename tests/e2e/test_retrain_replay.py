"""The learning loop on real data, through real processes (bench/replay.py, a few hundred requests).

RouterBench prompts are replayed through a running gateway; one fake upstream per model answers;
feedback is the recorded correctness of the model the gateway chose. A stale starting router
(trained on ARC only) is retrained from that feedback and hot-swapped under load with zero
failed requests, a deliberately worse artifact is refused by the publish gate, and both the
retrained router and the online (bandit) policy beat the starting router's quality at equal cost.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from bench import replay as R
from tests.support.paths import DATA

pytestmark = [
    pytest.mark.skipif(not (DATA / "routerbench").exists(), reason="shared RouterBench data not present"),
    pytest.mark.skipif(
        importlib.util.find_spec("routers.batching") is None,
        reason="routers.batching (the gateway's embedder) not present yet",
    ),
]


@pytest.mark.parametrize("family", ["cluster", "adapt"])
def test_replay_retrain_publish_gate_hot_swap_and_online(gateway, fake_upstream, tmp_path, family):
    """``cluster``: retrained from scratch; ``adapt``: retrain's default, the starting router adapted."""
    d = R.load_data()
    start, live, ev = R.split(
        d, n_start=300, n_live=600, n_eval=300, seed=0
    )  # the bench's size: 240 live were too few to learn from reliably
    start_dir = R.train_start_router(d, start, tmp_path / "start")
    fakes = {name: fake_upstream(model_id).base_url for name, (model_id, _, _) in R.MODELS.items()}
    cents = R.unlabelled_centroids(d, [start, live, ev], tmp_path / "centroids.npy")
    gw = gateway(R.policy_config(fakes, start_dir, tmp_path / "outcomes.sqlite", clusters=cents), env=R.GATEWAY_ENV)
    policy_before = gw.config.read_text()

    res = R.run_scenario(gw.url, gw.config, tmp_path, d, start_dir, live, ev, family=family)
    print(json.dumps({k: v for k, v in res.items() if k != "start_frontier"}, indent=2))

    # every replayed request succeeded and got its feedback
    assert (
        res["start"]["failed"] == 0 and res["live_phase"]["failed"] == 0 and res["live_phase"]["requests"] == len(live)
    )
    # the worse candidate: refused, nothing published
    worse = res["worse_candidate"]
    assert worse["exit"] == 3 and worse["decision"] == "refused"
    assert worse["metrics"]["candidate"]["brier"] > worse["metrics"]["current"]["brier"]
    # the retrained router passed the gate, was published and hot-swapped under load with no failure
    rt = res["retrain"]
    assert rt["exit"] == 0 and rt["decision"] == "published", rt
    assert rt["metrics"]["candidate"]["brier"] <= rt["metrics"]["current"]["brier"] - 0.01
    report = json.loads(open(rt["report_file"]).read())
    assert report["data"]["train_rows"] + report["data"]["holdout_rows"] == len(live)
    assert report["decision"] == "published" and report["published"]["previous"] == str(start_dir)
    assert report["family"] == family
    assert res["hot_swap_load"]["failed"] == 0 and res["hot_swap_load"]["ok"] > 20
    assert res["hot_swap_load"]["distinct_score_headers"] > 1  # served by both routers during the test
    new_path = yaml.safe_load(gw.config.read_text())["policies"]["replay"]["router"]["path"]
    assert new_path != str(start_dir) and gw.config.read_text() != policy_before
    # quality at equal cost: above the starting router's frontier at the same cost
    after = res["retrained"]
    assert after["failed"] == 0
    assert after["quality"] >= after["start_frontier_quality_at_same_cost"] + 0.02, after
    assert after["quality"] > res["start"]["quality"] + 0.05
    assert res["aiq"]["retrained"] > res["aiq"]["start"]  # RouterBench AIQ on the eval prompts
    # the online policy, separately: same traffic, learns from feedback alone, exploration bounded
    on = res["online"]
    assert on["failed"] == 0 and on["explored_share"] <= 0.05 + 1e-9 and on["feedback"] == len(live)
    assert on["quality"] >= on["start_frontier_quality_at_same_cost"] + 0.02, on
