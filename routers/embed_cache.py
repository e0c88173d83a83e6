"""On-disk embedding cache for training and evaluation (``~/.cache/shunter/emb``).

Keyed by the encoder hash and the sha256 of each text (batched and single-row embeddings are
bit-identical, see ``routers.encoder``), so re-running ``train``/``eval`` on
the same data does not re-embed. Override the folder with ``SHUNTER_CACHE_DIR``.

Safe across processes: every read and write of the two files (``keys.json``, ``vecs.npy``)
holds an exclusive ``flock`` on ``.lock`` in the folder, and a save first merges what other
processes added meanwhile, so concurrent trainings neither lose rows nor pair a key with
another text's vector.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .encoder import DIM, Encoder
from .progress import bar
from .settings import RouterSettings

_LOCK = threading.Lock()


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class EmbeddingCache:
    """Append-only store of text-hash -> embedding for one encoder."""

    def __init__(self, encoder: Encoder, root: Path | None = None) -> None:
        self.encoder = encoder
        self.dir = (root or RouterSettings().cache_root()) / "emb" / encoder.encoder_hash[:16]
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, int] = {}
        self._vecs = np.zeros((0, DIM), dtype=np.float32)
        with self._locked():
            self._load()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes (``flock``) and threads (``_LOCK``, held by the caller)."""
        with open(self.dir / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _load(self) -> None:
        """Read the files (call with ``_locked``)."""
        keys_f, vecs_f = self.dir / "keys.json", self.dir / "vecs.npy"
        if keys_f.exists() and vecs_f.exists():
            keys = json.loads(keys_f.read_text())
            vecs = np.load(vecs_f)
            n = min(len(keys), len(vecs))
            self._index = {k: i for i, k in enumerate(keys[:n])}
            self._vecs = vecs[:n]

    def _add(self, keys: list[str], vecs: np.ndarray) -> None:
        """Merge new rows into what is on disk now and write it back, under the lock."""
        with self._locked():
            self._load()  # another process may have added rows since we read
            new = [i for i, k in enumerate(keys) if k not in self._index]
            base = len(self._vecs)
            self._vecs = np.concatenate([self._vecs, vecs[new]])
            for j, i in enumerate(new):
                self._index[keys[i]] = base + j
            order = sorted(self._index, key=self._index.__getitem__)
            tag = f"{os.getpid()}.{threading.get_ident()}"
            tmp_v, tmp_k = self.dir / f"vecs.{tag}.tmp.npy", self.dir / f"keys.{tag}.tmp.json"
            np.save(tmp_v, self._vecs)
            tmp_k.write_text(json.dumps(order))
            os.replace(tmp_v, self.dir / "vecs.npy")
            os.replace(tmp_k, self.dir / "keys.json")

    def embed(self, texts: Sequence[str], progress: bool = False, chunk: int = 2048) -> np.ndarray:
        """Embeddings for ``texts``, computing (and saving) only the ones not cached yet."""
        keys = [_key(t) for t in texts]
        with _LOCK:
            with self._locked():
                self._load()
            missing = list(dict.fromkeys(k for k in keys if k not in self._index))
            text_of = {k: t for k, t in zip(keys, texts)}
            # one bar for every text not cached yet (the cached ones cost nothing)
            with bar("embedding", len(missing), "prompts", enabled=progress and bool(missing)) as b:
                for s in range(0, len(missing), chunk):
                    part = missing[s : s + chunk]
                    vecs = self.encoder.embed([text_of[k] for k in part], on_call=lambda n, _s: b.advance(n))
                    self._add(part, np.asarray(vecs, np.float32))
            return self._vecs[[self._index[k] for k in keys]].copy()


def embed_texts(texts: Sequence[str], encoder: Encoder | None = None, progress: bool = False) -> np.ndarray:
    """Cached bulk embedding for training-side code (default: the shared ``Encoder``)."""
    return EmbeddingCache(encoder or Encoder.default()).embed(texts, progress=progress)
