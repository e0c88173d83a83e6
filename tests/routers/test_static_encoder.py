"""The fast encoder tier: numpy serving path == the training-time (torch) form, and it tracks MiniLM."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routers.encoders import build_static
from routers.encoders.static import DEFAULT_TABLE, EXPECTED_SHA256, StaticEncoder


@pytest.fixture(scope="module")
def fast() -> StaticEncoder:
    return StaticEncoder.default()


@pytest.fixture(scope="module")
def prompts(data_dir) -> list[str]:
    rows = json.loads((data_dir / "llmrouter" / "train.json").read_text())
    return [r["question"] for r in rows[::97]][:48] + [
        "What is the capital of France?",
        # whitespace BERT splits on, and control characters it deletes (str.split would split there)
        "tab\there new\nline nbsp\u00a0ideo\u3000graphic em\u2003space line\u2028sep",
        "vertical\x0btab form\x0cfeed file\x1csep next\x85line unit\x1fsep",
        "",
        "x" * 30_000,  # one word over 100 characters: [UNK], which has no row
        "Summarise the history of the Roman republic in detail. " * 300,  # longer than the pre-cut
        "def f(x):\n    return [i ** 2 for i in range(x)]  # squares " * 40,
    ]


def test_committed_table_is_the_pinned_one(fast):
    assert fast.path == DEFAULT_TABLE
    assert fast.encoder_hash == EXPECTED_SHA256
    assert fast.dim == 384 and fast.vectors.dtype == np.int8
    assert fast.meta["command"] == "python -m routers.encoders.build_static"


def test_tokenisation_is_the_build_s(fast, prompts):
    served = fast.token_ids(prompts)
    built = build_static.tokenize(prompts, fast.valid)
    assert all(np.array_equal(a, b) for a, b in zip(served, built))
    assert all(len(r) <= fast.max_tokens for r in served)
    assert len(served[-3]) == 0 and len(served[-2]) == len(served[-1]) == fast.max_tokens


def test_numpy_serving_matches_the_training_time_form(fast, prompts):
    """The torch forward ``build_static.train`` optimises (embedding_bag sum, then normalise), on
    the committed rows (the trained table with its projection folded in, dequantised)."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    ids = build_static.tokenize(prompts, fast.valid)
    table = torch.tensor(fast.vectors.astype(np.float32) * fast.scales[:, None])
    flat = torch.tensor(np.concatenate(ids))
    offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(i) for i in ids])[:-1]]))
    with torch.no_grad():
        ref = F.normalize(F.embedding_bag(flat, table, offsets, mode="sum"), dim=1).numpy()
    got = fast.embed(prompts)
    nonempty = np.array([len(i) > 0 for i in ids])
    assert np.allclose(got[nonempty], ref[nonempty], atol=2e-5)
    assert not got[~nonempty].any()  # an empty prompt embeds to zeros, as in training (skipped there)
    one = np.stack([fast.embed_one(p) for p in prompts])
    assert np.allclose(one, got, atol=1e-6)


def test_int8_table_matches_the_float_table_it_was_quantised_from(fast):
    """The build's least cosine, on the held-out prompts, between the int8 folded rows and the
    float table times its projection (what was trained)."""
    assert fast.meta["report"]["quantized_vs_float_cosine"] >= 0.999


def test_fast_tier_lands_near_minilm(fast, prompts, encoder):
    """Cosine to the accurate tier's embedding of the same prompt (LLMRouter's mixed tasks).

    The build measured 0.72 mean on these prompts held out (they are in the final table's
    corpus); an untrained projection of the distilled table scores ~0.
    """
    texts = [p for p in prompts if p.strip()][:40]
    cos = np.sum(fast.embed(texts) * encoder.embed(texts), axis=1)
    assert float(np.median(cos)) >= 0.7, cos
    assert fast.meta["report"]["distilled_cosine"] >= 0.6
