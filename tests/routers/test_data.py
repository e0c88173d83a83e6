"""Importers on the real shared data files."""

import json

import numpy as np
import pytest

from routers.data import detect_format, group_split, kfold_split, load_table, shared_data_dir
from tests.support.tables import routellm_with_answers


def test_shared_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SHUNTER_DATA_DIR", str(tmp_path))
    assert shared_data_dir() == tmp_path


def test_routellm(data_dir):
    t = load_table(data_dir / "routellm-mmlu", "routellm")
    assert t.models == ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    assert 13000 <= len(t) < 13040  # contaminated prompts dropped
    assert set(np.unique(t.quality)) <= {0.0, 1.0}
    mean = t.quality.mean(axis=0)
    assert 0.65 < mean[0] < 0.75 and 0.78 < mean[1] < 0.84
    assert len(set(t.groups)) >= 50 and "anatomy" in t.groups
    assert np.isnan(t.cost).all()
    contaminated = [json.loads(l)["eval_prompt"] for l in open(data_dir / "routellm-mmlu/contaminated_prompts.jsonl")]
    assert not set(contaminated) & set(t.prompts)
    one = load_table(data_dir / "routellm-mmlu/mmlu_anatomy.csv", "routellm")
    assert len(one) > 100 and set(one.groups) == {"anatomy"}


def test_routellm_eval_file_with_answer_columns(data_dir, tmp_path):
    """``<model>_response`` columns are the models' answers, not models (they used to be read as
    outcome columns and fail to parse as booleans)."""
    rb, pair = routellm_with_answers(data_dir, tmp_path / "gsm_like.csv")
    t = load_table(tmp_path / "gsm_like.csv", "routellm")
    assert t.models == list(pair) and len(t) == len(rb)
    for m, name in pair.items():
        assert np.array_equal(t.quality[:, t.models.index(m)], rb.quality[:, rb.models.index(name)])
        assert t.responses[m] == rb.responses[name]
    assert t.subset(np.arange(5)).responses[t.models[0]] == rb.responses[pair[t.models[0]]][:5]


def test_routellm_value_that_is_not_an_outcome_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('prompt,model-a,notes\n"What is 2+2?",true,fine\n"And 3+3?",false,check this one\n')
    with pytest.raises(ValueError, match=r"bad\.csv:2: column 'notes' holds 'fine', not an outcome"):
        load_table(bad, "routellm")


@pytest.mark.parametrize("fmt", ["routerbench", "llmrouter"])
def test_a_file_of_another_format_is_an_error_that_names_the_right_one(data_dir, fmt):
    """RouteLLM's CSV read as another format used to load as an empty table, and the commands
    then failed with "nothing to score"; it names the file and the format it looks like."""
    f = data_dir / "routellm-mmlu" / "mmlu_college_mathematics.csv"
    with pytest.raises(ValueError, match=rf"mmlu_college_mathematics\.csv: no {fmt} rows .*looks like routellm"):
        load_table(f, fmt)


def test_routerbench(data_dir):
    t = load_table(data_dir / "routerbench", "routerbench")
    assert len(t) == 1877 and len(t.models) == 11
    assert "gpt-4-1106-preview" in t.models
    assert np.isfinite(t.cost).all() and (t.cost > 0).all()
    assert not any(p.startswith("[") for p in t.prompts[:50])  # list literal parsed
    assert len(set(t.ids)) > 1850  # a few sample_ids repeat in the real files
    assert t.responses and len(t.responses["gpt-4-1106-preview"]) == len(t)
    j = t.models.index("gpt-4-1106-preview")
    assert np.nanmean(t.quality[:, j]) > 0.85


def test_llmrouter(data_dir):
    t = load_table(data_dir / "llmrouter/train.json", "llmrouter")
    assert len(t) == 4799 and len(t.models) == 9
    assert np.nanmin(t.quality) >= 0 and np.nanmax(t.quality) <= 1
    assert np.isfinite(t.cost).all()
    assert "prices" in t.extra and t.extra["prices"]["gemma-2-9b-it"]["input_price"] == 0.1


def test_outcomes_roundtrip(tmp_path):
    rows = [
        {"id": "a", "prompt": "What is 2+2?", "model": "big", "quality": 1, "cost": 0.01},
        {"id": "a", "prompt": "What is 2+2?", "model": "small", "feedback": -1, "cost": 0.001},
        {
            "id": "b",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "model": "small",
            "quality": 0.5,
        },
    ]
    p = tmp_path / "outcomes.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    t = load_table(p, "outcomes")
    assert t.models == ["big", "small"] and t.prompts == ["What is 2+2?", "hi"]
    assert t.quality[0].tolist() == [1.0, 0.0]
    assert np.isnan(t.quality[1, 0]) and t.quality[1, 1] == 0.5


def test_group_split_holds_out_whole_groups(data_dir):
    t = load_table(data_dir / "routellm-mmlu", "routellm")
    tr, te = group_split(t, 0.2, seed=0)
    gtr, gte = {t.groups[i] for i in tr}, {t.groups[i] for i in te}
    assert not gtr & gte and 0.1 < len(gte) / len(gtr | gte) < 0.3


def test_row_split_holds_out_rows_of_every_subject(data_dir):
    t = load_table(data_dir / "routellm-mmlu", "routellm")
    tr, te = group_split(t, 0.2, seed=0, by="row")
    assert not set(tr) & set(te) and len(tr) + len(te) == len(t)
    assert 0.18 < len(te) / len(t) < 0.22
    assert {t.groups[i] for i in te} == set(t.groups)  # unseen questions, seen subjects
    assert np.array_equal(te, group_split(t, 0.2, seed=0, by="row")[1])  # seeded
    with pytest.raises(ValueError, match="split must be one of"):
        group_split(t, 0.2, by="subject")


@pytest.mark.parametrize("by,unit", [("group", "groups"), ("row", "rows")])
def test_kfold_holds_out_every_group_or_row_exactly_once(data_dir, by, unit):
    t = load_table(data_dir / "routellm-mmlu", "routellm")
    held = [kfold_split(t, i, 5, seed=0, by=by) for i in range(5)]
    tests = np.concatenate([te for _, te in held])
    assert sorted(tests.tolist()) == list(range(len(t)))  # each row held out once
    for tr, te in held:
        assert len(tr) + len(te) == len(t)
        gtr, gte = {t.groups[i] for i in tr}, {t.groups[i] for i in te}
        assert (not gtr & gte) if unit == "groups" else gte == set(t.groups)


def test_outcomes_with_embeddings_train_a_router(data_dir, tmp_path):
    """The gateway's outcome export (rows with recorded embeddings) trains without re-embedding."""
    from routers.base import load_router
    from routers.embed_cache import embed_texts
    from routers.train import train_router

    rb = load_table(data_dir / "routerbench", "routerbench").subset(np.arange(0, 1877, 20))
    emb = embed_texts(rb.prompts)
    rows = []
    for i in range(len(rb)):
        for j, m in enumerate(rb.models[:3]):
            rows.append(
                {
                    "id": rb.ids[i] + f"#{i}",
                    "prompt": rb.prompts[i],
                    "embedding": emb[i].tolist(),
                    "model": m,
                    "quality": rb.quality[i, j],
                    "cost": rb.cost[i, j],
                }
            )
    p = tmp_path / "out.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    t = load_table(p, "outcomes")
    assert t.embeddings is not None and t.embeddings.shape == (len(rb), 384)
    meta, _ = train_router("cluster", t, tmp_path / "art", k=4)
    assert meta["models"] == rb.models[:3] and meta["typical_cost_usd"]
    assert load_router(tmp_path / "art").score(emb[:3]).quality.shape == (3, 3)


def test_llmrouter_as_json_lines(data_dir, tmp_path):
    """The same items one per line (``.jsonl``) read as the JSON list does; prices still come
    from ``models.json`` beside the file; an item without scores is an error naming the file."""
    items = json.loads((data_dir / "llmrouter/train.json").read_text())[:30]
    (tmp_path / "part.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    (tmp_path / "models.json").write_text((data_dir / "llmrouter/models.json").read_text())
    lines = load_table(tmp_path / "part.jsonl", "llmrouter")
    whole = load_table(data_dir / "llmrouter/train.json", "llmrouter").subset(np.arange(30))
    assert lines.prompts == whole.prompts and lines.models == whole.models
    assert np.array_equal(lines.quality, whole.quality, equal_nan=True)
    assert np.allclose(lines.cost, whole.cost)
    assert load_table(tmp_path, "llmrouter").prompts == whole.prompts  # a folder of .jsonl
    assert detect_format(tmp_path / "part.jsonl") == [(tmp_path / "part.jsonl", "llmrouter")]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl: item 0 is not"):
        load_table(tmp_path / "bad.jsonl", "llmrouter")
