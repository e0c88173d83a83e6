"""Response cache: exact-match and semantic, opt-in per policy (``policies.<name>.cache``).

- **Key:** the policy name plus a hash of the normalised request (sorted JSON without the fields
  that do not change the answer: ``stream``, ``stream_options``, ``user``, ``shunter``;
  message text stripped of surrounding whitespace).
- **Exact:** ``cache:resp:<policy>:<sha256>`` holds the upstream's JSON body for ``ttl`` seconds.
- **Semantic** (``semantic: true``): ``cache:sem:<policy>:<scope>`` holds a small index of
  (float16 embedding, response key, expiry); ``scope`` hashes every request field except the
  messages/prompt, so only requests with the same parameters can match. A lookup takes the most
  similar live entry (cosine of the normalised embeddings of the policy's ``embed`` text) and
  serves it when the similarity reaches ``similarity``.
- Everything lives in ``SharedState`` (``Services.shared``): in-process by default, Redis when
  ``server.redis_url`` is set, so every replica sees the same cache.
- Only successful non-streaming responses are stored; a hit is served to plain and streaming
  requests alike (a stream gets the cached completion as SSE chunks, ``pipeline.sse``).
- Response headers: ``x-shunter-cache: hit|miss`` and, on semantic lookups and hits,
  ``x-shunter-cache-similarity``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from gateway import metrics

log = logging.getLogger("shunter.cache")

_IGNORED = {"stream", "stream_options", "user", "shunter"}
_TEXT_FIELDS = {"messages", "prompt"}


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _digest(obj: Any) -> str:
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def request_key(policy: str, data: dict) -> str:
    """The exact-match key for a request body under a policy."""
    body = {k: _norm(v) for k, v in data.items() if k not in _IGNORED}
    return f"cache:resp:{policy}:{_digest(body)}"


def semantic_scope(policy: str, data: dict) -> str:
    """The semantic index key: every request field except the text (and the ignored ones)."""
    rest = {k: _norm(v) for k, v in data.items() if k not in _IGNORED | _TEXT_FIELDS}
    return f"cache:sem:{policy}:{_digest(rest)[:32]}"


def _encode_index(entries: list[tuple[np.ndarray, str, float]]) -> str:
    return orjson.dumps(
        [[base64.b64encode(v.astype(np.float16).tobytes()).decode(), k, exp] for v, k, exp in entries]
    ).decode()


def _decode_index(raw: str | None) -> list[tuple[np.ndarray, str, float]]:
    if not raw:
        return []
    try:
        return [
            (np.frombuffer(base64.b64decode(v), dtype=np.float16).astype(np.float32), k, float(exp))
            for v, k, exp in orjson.loads(raw)
        ]
    except Exception:  # a corrupt or foreign value: start over
        return []


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


@dataclass
class Lookup:
    """The result of a cache lookup for one request; ``store`` fills the cache after a miss."""

    enabled: bool = False
    payload: dict | None = None
    similarity: float | None = None
    key: str = ""
    scope: str = ""
    embedding: np.ndarray | None = None
    ttl: float = 0.0
    max_entries: int = 0
    shared: Any = None
    policy: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def hit(self) -> bool:
        return self.payload is not None

    @property
    def model(self) -> str:
        return str((self.payload or {}).get("model") or "")

    def headers(self) -> dict[str, str]:
        if not self.enabled:
            return {}
        h = {"x-shunter-cache": "hit" if self.hit else "miss"}
        if self.similarity is not None:
            h["x-shunter-cache-similarity"] = f"{self.similarity:.4f}"
        return h

    async def store(self, payload: dict) -> None:
        """Keep a successful plain answer (called on the miss path)."""
        if not self.enabled or self.hit or not payload.get("choices"):
            return
        try:
            await self.shared.set(self.key, orjson.dumps(payload).decode(), ttl=self.ttl)
            if self.embedding is not None:
                now = time.time()
                entries = [
                    e for e in _decode_index(await self.shared.get(self.scope)) if e[2] > now and e[1] != self.key
                ]
                entries.append((self.embedding, self.key, now + self.ttl))
                await self.shared.set(self.scope, _encode_index(entries[-self.max_entries :]), ttl=self.ttl)
        except Exception:  # the cache must never fail a request
            log.exception("response cache store failed")


_DISABLED = Lookup()


async def lookup(shared: Any, rt: Any, decision: Any, data: dict, text: str) -> Lookup:
    """Look the request up in its policy's cache; a disabled cache returns an empty ``Lookup``."""
    policy = decision.policy
    cfg = rt.policies[policy].cfg.cache if policy in rt.policies else None
    if cfg is None:
        return _DISABLED
    lk = Lookup(
        True, key=request_key(policy, data), ttl=cfg.ttl, max_entries=cfg.max_entries, shared=shared, policy=policy
    )
    try:
        raw = await shared.get(lk.key)
        if raw:
            lk.payload = orjson.loads(raw)
            lk.similarity = 1.0
        elif cfg.semantic and text:
            await _semantic(lk, rt, decision, data, text, cfg.similarity)
    except Exception:
        log.exception("response cache lookup failed; treating as a miss")
        lk.payload = None
    metrics.CACHE.labels("response", "hit" if lk.hit else "miss").inc()
    return lk


async def _semantic(lk: Lookup, rt: Any, decision: Any, data: dict, text: str, threshold: float) -> None:
    emb = getattr(decision, "embedding", None)
    if getattr(decision, "encoder_tier", "") == "fast":  # the index holds MiniLM embeddings only
        emb = None
    if emb is None:
        if getattr(rt, "embedder", None) is None:
            return
        emb = await rt.embed(text)
    lk.embedding = _unit(emb)
    lk.scope = semantic_scope(lk.policy, data)
    now = time.time()
    live = [e for e in _decode_index(await lk.shared.get(lk.scope)) if e[2] > now]
    if not live:
        return
    sims = np.stack([_unit(v) for v, _, _ in live]) @ lk.embedding
    best = int(np.argmax(sims))
    lk.similarity = float(sims[best])
    metrics.CACHE_SIMILARITY.labels(lk.policy).observe(max(0.0, lk.similarity))
    if lk.similarity >= threshold:
        raw = await lk.shared.get(live[best][1])
        if raw:
            lk.payload = orjson.loads(raw)
