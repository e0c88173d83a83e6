"""The eval report's subject bound: a ceiling computed from the held-out labels."""

import numpy as np

from routers.data import load_table
from routers.eval_report import _pair_table, subject_oracle
from routers.evaluate import pair_baselines


def _rows_of(t, subjects):
    return np.array([i for i, g in enumerate(t.groups) if g in subjects])


def test_subject_bound_needs_more_than_one_subject_to_beat_random(data_dir):
    t = load_table(data_dir / "routellm-mmlu", "routellm")
    one = subject_oracle(t, _rows_of(t, {"anatomy"}))
    assert abs(one["apgr"] - 0.5) < 1e-9  # one subject: a constant score, no ranking at all
    # GPT-4-1106 ties Mixtral on marketing and leads by ~0.25 on conceptual physics: knowing
    # which is which recovers most of the gap with few strong calls.
    two = subject_oracle(t, _rows_of(t, {"marketing", "conceptual_physics"}))
    assert two["apgr"] > 0.7 and two["cpt50"] < 0.3
    assert two["q_strong"] > 0 and two["q_weak"] > 0


def test_pair_table_prints_the_bound_beside_the_routers(data_dir):
    t = load_table(data_dir / "routellm-mmlu", "routellm")
    te = _rows_of(t, {"marketing", "conceptual_physics"})
    bound = subject_oracle(t, te)
    s, w = t.models.index("gpt-4-1106-preview"), t.models.index("mistralai/Mixtral-8x7B-Instruct-v0.1")
    base = pair_baselines(t.quality[te, s], t.quality[te, w])
    rep = {"pair": bound, "pair_baselines": base}
    text = "\n".join(_pair_table({"knn": {0: rep}}, [0], {0: bound}))
    assert "| *subject bound*" in text and f"**{bound['apgr']:.3f}**" in text


def test_transfer_scores_every_routerbench_task_on_the_same_model_pair(data_dir, tmp_path):
    from routers.eval_report import TRANSFER_PAIR, transfer

    mmlu = load_table(data_dir / "routellm-mmlu", "routellm")
    mmlu = mmlu.subset(np.random.default_rng(0).choice(len(mmlu), 600, replace=False))
    rb = load_table(data_dir / "routerbench", "routerbench")
    res = transfer("knn", mmlu, rb, tmp_path)
    assert set(res) == {"arc-challenge", "mbpp", "winogrande"}
    cols = [rb.models.index(m) for m in TRANSFER_PAIR]
    assert sum(r["rows"] for r in res.values()) == int(np.isfinite(rb.quality[:, cols]).all(axis=1).sum())
    for r in res.values():
        assert 0.0 < r["apgr"] < 1.5 and 0.0 <= r["cpt50"] <= 1.0
        assert r["q_strong"] > r["q_weak"]  # GPT-4-1106 beats Mixtral on each of these tasks
