"""Everything built from one policy file: upstream clients, loaded routers, resolved objectives.

A ``Runtime`` is immutable once built. Reloading builds a new one and swaps the reference, so a
request keeps the runtime it started with. Upstream clients (connection pools) are reused across
reloads when their configuration did not change.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gateway.policy.loader import resolve_path
from gateway.policy.schema import Config, Policy
from gateway.upstream.client import UpstreamClient
from routers.decision import Objective as DecisionObjective
from routers.decision import expected_cost

log = logging.getLogger("shunter")


def threshold_for_share(meta: dict, share: float, strong: str | None = None, weak: str | None = None) -> float:
    """The strong_win threshold that sends ``share`` of the router's calibration prompts to strong.

    ``strong``/``weak`` are the router's own model names (needed for many-model routers).
    """
    from routers.calibration import strong_share_threshold

    return strong_share_threshold(meta, share, strong, weak)


@dataclass
class PolicyRuntime:
    name: str
    cfg: Policy
    router: Any = None  # routers.base.Router
    model_map: dict[str, str] = field(default_factory=dict)
    strong: str | None = None
    weak: str | None = None
    objective: DecisionObjective = field(default_factory=lambda: DecisionObjective("threshold", 0.5))
    checker: Any = None  # routers.cascade.AnswerChecker for a runtime cascade
    semantic: Any = None  # gateway.policy.semantic.SemanticIndex
    encoder: str = "accurate"  # the resolved tier: fast, accurate or tiered (gateway.policy.tiers)
    fast_router: Any = None  # scores fast-tier embeddings (router.fast_path, else the router)
    fast_encoder: Any = None  # routers.encoders.static.StaticEncoder for fast and tiered policies
    fast_cdf: Any = None  # the fast router's strong_win calibration quantiles: the tiered band's units


class Runtime:
    def __init__(
        self,
        cfg: Config,
        path: Path,
        clients: dict[str, UpstreamClient],
        policies: dict[str, PolicyRuntime],
        embedder: Any = None,
    ) -> None:
        self.cfg = cfg
        self.path = path
        self.clients = clients
        self.policies = policies
        self.embedder = embedder
        self.aliases = {a: name for name, p in cfg.policies.items() for a in p.aliases}
        self.default_policy = cfg.server.default_policy or (next(iter(cfg.policies)) if cfg.policies else None)

    async def embed(self, text: str, max_tokens: int | None = None) -> np.ndarray:
        """MiniLM's embedding of ``text``, cut to ``max_tokens`` (default: the encoder's 256)."""
        if self.embedder is None:
            raise RuntimeError("no encoder loaded")
        if max_tokens is None:
            return await self.embedder.embed_one(text)
        return await self.embedder.embed_one(text, max_tokens=max_tokens)

    def count_tokens(self, text: str) -> int:
        """The prompt's token count: exact up to ``LONG_TEXT`` characters, sampled beyond (see ``sampled_count``)."""
        enc = getattr(self.embedder, "encoder", None)
        if enc is not None and hasattr(enc, "count_tokens"):
            try:
                if len(text) <= 4096:
                    return _count_cached(enc, text)
                if len(text) <= LONG_TEXT:
                    return int(enc.count_tokens(text))
                return sampled_count(enc.count_tokens, text)
            except Exception:  # pragma: no cover - tokenizer failure must not fail the request
                pass
        return max(1, len(text) // 4)

    def expected_cost(self, model: str, prompt_tokens: int) -> float:
        cfg = self.clients[model].cfg
        return expected_cost(prompt_tokens, cfg.input_price or 0.0, cfg.output_price or 0.0, cfg.typical_output_tokens)


# Tokenizing runs on the event loop, and its cost grows faster than the text: ~15 ms for 4k
# characters but ~5 s for 1 MB on a busy 2-core machine, during which every other request waited.
# Longer prompts are counted from samples (bench/huge_prompts.py measures the effect).
LONG_TEXT = 8192
_SAMPLES, _SAMPLE_CHARS = 16, 512


def sampled_count(count: Any, text: str) -> int:
    """Tokens in a long ``text``, scaled from ``_SAMPLES`` evenly spread windows counted exactly.

    Tokenizing 8k characters instead of all of them; on prose, code, Markdown and JSON the estimate
    came within -3% .. +5% of the full count (the count is itself an estimate of the upstream's).
    """
    step = (len(text) - _SAMPLE_CHARS) / (_SAMPLES - 1)
    windows = [text[int(i * step) : int(i * step) + _SAMPLE_CHARS] for i in range(_SAMPLES)]
    tokens = sum(int(count(w)) for w in windows)
    return max(1, math.ceil(tokens * len(text) / sum(len(w) for w in windows)))


@dataclass
class RuntimeHolder:
    """The runtime in force; a reload swaps ``current`` (one reference assignment)."""

    current: Runtime
    loaded_at: float = field(default_factory=time.time)
    last_reload: dict | None = None


@functools.lru_cache(maxsize=4096)
def _count_cached(enc: Any, text: str) -> int:
    """Token count of a recent short prompt: a repeated prompt skips the tokenizer (~10% of a request's CPU)."""
    return int(enc.count_tokens(text))


class Encoders:
    """The process's encoders, each made on first use: MiniLM (``accurate``), the static table
    (``fast``), and the semantic-route utterances already embedded (kept across reloads).

    ``Services`` owns one and hands it to every runtime it builds; nothing else holds an encoder.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._accurate: Any = None
        self._fast: Any = None
        self._utterances: dict[str, np.ndarray] = {}
        self._hashes: dict[str, str] = {}
        self._lock = threading.RLock()  # runtimes are built on worker threads (reloads)

    def accurate(self) -> Any:
        """MiniLM (``routers.encoder.Encoder``) on the vendored graph."""
        with self._lock:
            if self._accurate is None:
                from routers.encoder import Encoder

                self._accurate = Encoder(threads=self.threads)
            return self._accurate

    def fast(self) -> Any:
        """The static table (``routers.encoders.static.StaticEncoder``)."""
        with self._lock:
            if self._fast is None:
                from routers.encoders.static import StaticEncoder

                self._fast = StaticEncoder()
            return self._fast

    def accurate_hash(self) -> str:
        """The MiniLM graph's hash, without starting an ONNX session when none is loaded yet."""
        from routers.encoder import DEFAULT_MODEL, file_sha256
        from routers.encoder_build import ensure

        if self._accurate is not None:
            return str(self._accurate.encoder_hash)
        with self._lock:  # hashed once per process, not once per policy and reload
            if "accurate" not in self._hashes:
                self._hashes["accurate"] = file_sha256(ensure(DEFAULT_MODEL))
            return self._hashes["accurate"]

    def fast_hash(self) -> str:
        """The static table's hash, without loading it ("" when the table is missing)."""
        from routers.encoder import file_sha256
        from routers.encoders.static import DEFAULT_TABLE

        if self._fast is not None:
            return str(self._fast.encoder_hash)
        with self._lock:
            if "fast" not in self._hashes:
                self._hashes["fast"] = file_sha256(DEFAULT_TABLE) if DEFAULT_TABLE.exists() else ""
            return self._hashes["fast"]

    def embed_utterances(self, texts: Sequence[str]) -> np.ndarray:
        """Semantic-route utterances with MiniLM, each embedded once for the life of the process."""
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._utterances]
            if missing:
                self._utterances.update(zip(missing, self.accurate().embed(missing)))
            return np.stack([self._utterances[t] for t in texts]).astype(np.float32)


def _warn_encoder_mismatch(path: Path, meta: dict[str, Any], encoder_hash: str) -> None:
    from routers.base import encoder_mismatch

    problem = encoder_mismatch(meta, encoder_hash)
    if problem:
        log.warning("%s: %s", path, problem)


def _load_router(base: Path, path: str, cache: dict[str, Any]) -> Any:
    from routers.base import load_router

    rpath = resolve_path(base, path)
    key = str(rpath.resolve())
    router = cache.get(key)
    if router is None:
        router = load_router(rpath)
    cache[key] = router
    return router


def resolve_tier(pol: Policy, router: Any, fast_router: Any, encoders: Encoders) -> tuple[str, Any]:
    """The policy's encoder tier (``auto`` resolved from what its routers were trained on).

    Returns ``(tier, StaticEncoder or None)``; a router scoring a tier whose encoder it does not
    pin is logged (its scores are off), as for an out-of-date MiniLM graph.
    """
    from routers.base import accepts_encoder, encoder_hashes

    meta = getattr(router, "meta", {}) or {}
    fast_meta = getattr(fast_router, "meta", {}) or {}
    fast_hash = encoders.fast_hash() if pol.encoder != "accurate" else ""
    tier = pol.encoder
    if tier == "auto":
        acc_ok = bool(encoder_hashes(meta)) and accepts_encoder(meta, encoders.accurate_hash())
        tier = ("tiered" if acc_ok else "fast") if fast_hash in encoder_hashes(fast_meta) else "accurate"
    if tier in ("accurate", "tiered"):
        _warn_encoder_mismatch(Path(getattr(router, "path", "")), meta, encoders.accurate_hash())
    if tier == "accurate":
        return tier, None
    _warn_encoder_mismatch(Path(getattr(fast_router, "path", "")), fast_meta, fast_hash)
    return tier, encoders.fast()


def build_policies(
    cfg: Config, base: Path, router_cache: dict[str, Any] | None = None, encoders: Encoders | None = None
) -> dict[str, PolicyRuntime]:
    """Every policy's runtime; ``encoders``: the process's (``Services.encoders``), else fresh ones."""
    from gateway.policy.semantic import build_index
    from routers.encoders.tiered import strong_win_cdf

    out: dict[str, PolicyRuntime] = {}
    router_cache = router_cache if router_cache is not None else {}
    encoders = encoders or Encoders()
    for name, pol in cfg.policies.items():
        pr = PolicyRuntime(name, pol)
        pr.semantic = build_index(pol.semantic_routes, encoders.embed_utterances) if pol.semantic_routes else None
        obj = pol.objective
        if pol.router:
            router = _load_router(base, pol.router.path, router_cache)
            pr.router = router
            pr.fast_router = _load_router(base, pol.router.fast_path, router_cache) if pol.router.fast_path else router
            pr.encoder, pr.fast_encoder = resolve_tier(pol, router, pr.fast_router, encoders)
            cdf = strong_win_cdf(getattr(pr.fast_router, "meta", {}) or {})
            pr.fast_cdf = tuple(cdf.tolist()) if cdf is not None else None  # floats: read per request
            pr.model_map = {c: pol.router.model_map.get(c, c) for c in pol.candidates}
            inverse = {v: k for k, v in pr.model_map.items()}
            meta = getattr(router, "meta", {}) or {}
            pr.strong = pol.router.strong or inverse.get(meta.get("strong") or "")
            pr.weak = pol.router.weak or inverse.get(meta.get("weak") or "")
            if obj.kind == "target_strong_share":
                inner_strong = pr.model_map.get(pr.strong) if pr.strong else None
                inner_weak = pr.model_map.get(pr.weak) if pr.weak else None
                pr.objective = DecisionObjective(
                    "threshold", threshold_for_share(meta, obj.value, inner_strong, inner_weak)
                )
            else:
                pr.objective = DecisionObjective(obj.kind, obj.value)  # type: ignore[arg-type]
        else:
            kind = "threshold" if obj.kind == "target_strong_share" else obj.kind
            pr.objective = DecisionObjective(kind, obj.value)  # type: ignore[arg-type]
        if pol.cascade:
            from routers.cascade import AnswerChecker

            cpath = resolve_path(base, pol.cascade.checker)
            key = "checker:" + str(cpath.resolve())
            pr.checker = router_cache.get(key) or AnswerChecker.load(cpath)
            router_cache[key] = pr.checker
        out[name] = pr
    return out


def build_clients(
    cfg: Config, launched: dict[str, str], previous: dict[str, UpstreamClient] | None = None
) -> dict[str, UpstreamClient]:
    previous = previous or {}
    clients: dict[str, UpstreamClient] = {}
    for name, up in cfg.upstreams.items():
        base_url = launched.get(name) or up.base_url
        old = previous.get(name)
        if old is not None and old.cfg == up and old.base_url == (base_url or "").rstrip("/"):
            clients[name] = old
        else:
            clients[name] = UpstreamClient(name, up, base_url)
    return clients


def make_embedder(settings: Any, encoders: Encoders) -> Any:
    """The micro-batching encoder the routers, semantic routes, cascade checker and cache share."""
    from gateway import metrics
    from routers.batching import AsyncEmbedder

    def on_batch(size: int, seconds: float) -> None:
        metrics.EMBEDDING_BATCH.observe(size)
        metrics.EMBEDDING_DURATION.observe(seconds)

    def on_cache(hit: bool) -> None:
        metrics.CACHE.labels("embedding", "hit" if hit else "miss").inc()

    return AsyncEmbedder(
        encoders.accurate(),
        max_batch=settings.embed_max_batch,
        max_wait_ms=settings.embed_max_wait_ms,
        pad_slack=settings.embed_pad_slack,
        max_call_tokens=settings.embed_max_call_tokens,
        cache_size=settings.embed_cache_size,
        on_batch=on_batch,
        on_cache=on_cache,
    )


def needs_encoder(cfg: Config) -> bool:
    """Whether any policy may embed with MiniLM (a policy on ``encoder: fast`` alone does not)."""
    return any(
        (p.router is not None and p.encoder != "fast")
        or p.semantic_routes
        or p.cascade is not None
        or (p.cache and p.cache.semantic)
        for p in cfg.policies.values()
    )
