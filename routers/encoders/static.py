"""The fast encoder tier: a static token-embedding table, served with numpy + tokenizers.

A prompt's embedding is ``normalize(sum_t s_t * q_t)`` over its word-piece tokens ``t``: ``q``
is an int8 table with one 384-d row per token of MiniLM's vocabulary and ``s`` a scale per row.
The rows are a 256-d trained table already multiplied by its 256 -> 384 projection into the
accurate tier's embedding space, so both tiers give L2-normalised 384-d vectors a router can
score. No transformer runs: the cost is tokenising and one (tokens x 384) int8 gather and
weighted sum, ~0.03 ms of CPU for a typical prompt (``python -m bench.routing``).

Tokenising is the larger part. HF ``tokenizers`` costs ~2 µs of CPU per word (normalisation with
offsets), so the table splits the text on the whitespace MiniLM's BERT pre-tokeniser splits on
and caches each chunk's word-piece ids (``chunk_cache`` entries): BERT tokenisation never joins
across that whitespace, so the concatenated ids equal the whole text's, bit for bit (tested).

The table (``routers/assets/static-minilm-256.npz``, ~11 MB, committed) is built offline by
``python -m routers.encoders.build_static`` (see that module): model2vec's ``distill`` from the
local all-MiniLM-L6-v2 weights, then trained token by token against the accurate tier's
embeddings of prompts from ``../shared/data``. Its SHA-256 is pinned in ``EXPECTED_SHA256``;
routers record it in ``router.json`` (``encoder.hash``) like the MiniLM graph's.

Tokenisation is MiniLM's own (the vendored ``tokenizer.json``), without ``[CLS]``/``[SEP]``;
special and unused tokens have no row and are skipped. Long prompts keep their head and tail
(``max_tokens`` word pieces: the first ``head_tokens`` and the rest from the end), like the
accurate tier.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ..encoder import DEFAULT_TOKENIZER, file_sha256

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_TABLE = ASSETS / "static-minilm-256.npz"
# printed by python -m routers.encoders.build_static for the committed table
EXPECTED_SHA256 = "419213879f7e6b3a476530f7f5c3cbb9b3ba06e219eb6a9ce81b6d342b27f946"
MAX_TOKENS = 512
HEAD_TOKENS = 16
_HEAD_CHARS, _TAIL_CHARS = 4_000, 8_000  # cheap pre-cut of very long texts (512 tokens < ~4,000 chars)

log = logging.getLogger("shunter")

# What BertNormalizer maps to " " and BertPreTokenizer then splits on: Unicode White_Space less
# the control characters (\x0b, \x0c, \x1c-\x1f, \x85), which clean_text deletes instead.
_SPLIT = re.compile("[ \t\n\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
# The characters Python's ``str.split()`` splits on and BERT deletes instead; without them (almost
# every text) ``str.split()`` splits exactly where ``_SPLIT`` does, at a quarter of the cost.
_DELETED = re.compile("[\x0b\x0c\x1c-\x1f\x85]")


def split_chunks(text: str) -> list[str]:
    """``text`` split where BERT's pre-tokeniser splits (no empty chunks)."""
    if _DELETED.search(text):
        return [c for c in _SPLIT.split(text) if c]
    return text.split()


def precut(text: str) -> str:
    """A cheap character cut of very long texts (keeps far more than ``MAX_TOKENS`` word pieces)."""
    if len(text) > _HEAD_CHARS + _TAIL_CHARS:
        return text[:_HEAD_CHARS] + " " + text[-_TAIL_CHARS:]
    return text


def cut_ids(ids: Sequence[int] | np.ndarray, valid: np.ndarray, max_tokens: int, head_tokens: int) -> np.ndarray:
    """The ids that have a row (``valid[id]``), cut to ``max_tokens`` keeping head and tail.

    Shared by serving and ``routers.encoders.build_static``, so both read the same tokens.
    """
    arr = np.asarray(ids, dtype=np.int64)
    arr = arr[valid[arr]]
    if len(arr) > max_tokens:
        head = min(head_tokens, max_tokens)
        arr = np.concatenate([arr[:head], arr[len(arr) - (max_tokens - head) :]])
    return arr


class StaticEncoder:
    """Static-table sentence embedder. ``embed(texts)`` returns (n, dim) float32 unit vectors."""

    def __init__(
        self,
        path: str | Path = DEFAULT_TABLE,
        tokenizer_path: str | Path = DEFAULT_TOKENIZER,
        max_tokens: int = MAX_TOKENS,
        head_tokens: int = HEAD_TOKENS,
        chunk_cache: int = 50_000,
    ) -> None:
        self.path = Path(path)
        with np.load(self.path, allow_pickle=False) as z:
            self.vectors: np.ndarray = np.ascontiguousarray(z["vectors"])  # (V, dim) int8
            self.scales: np.ndarray = np.ascontiguousarray(z["scales"], dtype=np.float32)  # (V,)
            self.meta: dict = json.loads(str(z["meta"]))
        self.dim = int(self.vectors.shape[1])
        self.chunk_cache = chunk_cache
        self._chunks: dict[str, tuple[int, ...]] = {}
        self.max_tokens = max_tokens
        self.head_tokens = head_tokens
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        if self.tokenizer.get_vocab_size() != len(self.vectors):
            raise ValueError(
                f"{self.path}: table has {len(self.vectors)} rows, tokenizer {self.tokenizer.get_vocab_size()} tokens"
            )
        self.valid = self.scales > 0  # tokens with a row (special and unused tokens have none)
        self.encoder_id: str = self.meta.get("id", self.path.stem)
        self.encoder_hash = file_sha256(self.path)
        if self.path == DEFAULT_TABLE and EXPECTED_SHA256 and self.encoder_hash != EXPECTED_SHA256:
            log.warning(
                "static encoder table %s has sha256 %s, expected %s: routers were trained on the pinned table",
                self.path,
                self.encoder_hash,
                EXPECTED_SHA256,
            )

    _default: StaticEncoder | None = None

    @classmethod
    def default(cls) -> StaticEncoder:
        """A shared table for offline tools (train, eval, score, calibrate) in one process.

        The gateway never calls this: its encoders belong to ``Services.encoders`` (``gateway.runtime.Encoders``).
        """
        if cls._default is None:
            cls._default = cls()
        return cls._default

    # -- tokenisation -------------------------------------------------------------------
    def _chunk_ids(self, chunk: str) -> tuple[int, ...]:
        ids = self._chunks.get(chunk)
        if ids is None:
            valid = self.valid
            ids = tuple(i for i in self.tokenizer.encode(chunk, add_special_tokens=False).ids if valid[i])
            if len(self._chunks) >= self.chunk_cache:
                self._chunks.clear()  # bounded; refills with the chunks in use
            self._chunks[chunk] = ids
        return ids

    def ids_of(self, text: str) -> np.ndarray:
        """One text's word-piece ids with a row, cut as the table reads them (cached per chunk)."""
        ids: list[int] = []
        extend, cached = ids.extend, self._chunks.get
        for chunk in split_chunks(precut(text or "")):
            got = cached(chunk)
            extend(got if got is not None else self._chunk_ids(chunk))
        if len(ids) > self.max_tokens:
            head = min(self.head_tokens, self.max_tokens)
            ids = ids[:head] + ids[len(ids) - (self.max_tokens - head) :]
        return np.array(ids, dtype=np.intp)

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Word-piece ids per text (no special tokens), cut as the table reads them."""
        return [self.ids_of(t) for t in texts]

    def count_tokens(self, text: str) -> int:
        """Word-piece token count of ``text`` (no special tokens), as the accurate tier counts."""
        return len(self.tokenizer.encode(text or "", add_special_tokens=False).ids)

    # -- embedding ----------------------------------------------------------------------
    def pooled(self, ids: np.ndarray) -> np.ndarray:
        """The (dim,) weighted sum of the rows of ``ids`` (zeros for none)."""
        if len(ids) == 0:
            return np.zeros(self.dim, np.float32)
        return self.scales[ids] @ self.vectors[ids].astype(np.float32)

    def embed_ids(self, rows: Sequence[np.ndarray]) -> np.ndarray:
        """(n, dim) unit embeddings of pre-tokenised rows (``token_ids``); empty rows give zeros."""
        out = np.stack([self.pooled(r) for r in rows]) if rows else np.zeros((0, self.dim), np.float32)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norm, 1e-12)).astype(np.float32)

    def embed(
        self,
        texts: Sequence[str],
        progress: bool = False,
        on_call: Callable[[int, float], None] | None = None,
    ) -> np.ndarray:
        """(n, dim) float32 L2-normalised embeddings of ``texts`` (``Encoder.embed``'s signature).

        ``on_call(rows, seconds)`` after every 1,024 rows (progress bars); ``progress`` is unused.
        """
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for s in range(0, len(texts), 1024):
            t0 = time.perf_counter()
            out[s : s + 1024] = self.embed_ids(self.token_ids(texts[s : s + 1024]))
            if on_call is not None:
                on_call(len(out[s : s + 1024]), time.perf_counter() - t0)
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """The (dim,) embedding of one text (what the gateway calls inline)."""
        v = self.pooled(self.ids_of(text))
        n = float(np.sqrt(v @ v))
        return v / n if n > 1e-12 else v
