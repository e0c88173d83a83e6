"""The training-side embedding cache under concurrent writers: two processes filling one folder
lose no rows and never pair a key with another text's vector."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from routers.embed_cache import EmbeddingCache
from routers.encoders.static import StaticEncoder

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from pathlib import Path
from routers.embed_cache import EmbeddingCache
from routers.encoders.static import StaticEncoder
root, who = Path(sys.argv[1]), sys.argv[2]
texts = [f"writer {who} prompt {i}: what is {i} times {i + 7}?" for i in range(400)]
EmbeddingCache(StaticEncoder(), root).embed(texts, chunk=10)  # many small saves, interleaved
"""


def texts_of(who: str) -> list[str]:
    return [f"writer {who} prompt {i}: what is {i} times {i + 7}?" for i in range(400)]


def test_two_processes_fill_one_cache_without_losing_or_mixing_rows(tmp_path):
    env = {"PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), who], cwd=ROOT, env=env) for who in "ab"]
    assert [p.wait(300) for p in procs] == [0, 0]
    enc = StaticEncoder()
    cache = EmbeddingCache(enc, tmp_path)
    texts = texts_of("a") + texts_of("b")
    assert len(cache._index) == len(texts)  # every row of both writers is on disk
    got = cache.embed(texts)  # all cached: nothing is embedded again
    assert len(cache._index) == len(texts)
    np.testing.assert_allclose(got, enc.embed(texts), atol=1e-6)
