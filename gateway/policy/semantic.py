"""Semantic routes: match a prompt to example utterances by cosine similarity.

Utterances are embedded once when the policy file loads, with the same encoder the routers use
(``routers.encoder.Encoder``; 384-d, L2-normalised), so a request costs one matrix-vector
product on top of the prompt embedding the router needs anyway. A route's score is the cosine
similarity to its closest utterance; the best-scoring route at or above its threshold wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gateway.policy.schema import SemanticRoute

EmbedFn = Callable[[Sequence[str]], np.ndarray]


def embed_each(texts: Sequence[str]) -> np.ndarray:
    """Embed ``texts`` with MiniLM (offline tools; the gateway embeds through ``runtime.Encoders``)."""
    from routers.encoder import Encoder

    return Encoder().embed(list(texts))


@dataclass
class Match:
    route: SemanticRoute
    score: float


class SemanticIndex:
    """Utterance embeddings of one policy's routes."""

    def __init__(self, routes: list[SemanticRoute], embed: EmbedFn | None = None) -> None:
        self.routes = list(routes)
        texts = [u for r in self.routes for u in r.utterances]
        self.owner = np.array([i for i, r in enumerate(self.routes) for _ in r.utterances], dtype=np.int64)
        self.matrix = (embed or embed_each)(texts)

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """Per-route score (max cosine over its utterances) for one or more prompt embeddings.

        ``emb`` is (384,) or (n, 384); returns (n_routes,) or (n, n_routes).
        """
        single = emb.ndim == 1
        sims = np.atleast_2d(emb).astype(np.float32) @ self.matrix.T  # (n, n_utterances)
        out = np.full((sims.shape[0], len(self.routes)), -1.0, dtype=np.float32)
        np.maximum.at(out.T, self.owner, sims.T)
        return out[0] if single else out

    def match(self, emb: np.ndarray, thresholds: Sequence[float] | None = None) -> Match | None:
        """The best route whose score reaches its threshold, or None."""
        s = self.scores(emb)
        th = np.array(thresholds if thresholds is not None else [r.threshold for r in self.routes], dtype=np.float32)
        ok = s >= th
        if not ok.any():
            return None
        i = int(np.argmax(np.where(ok, s, -np.inf)))
        return Match(self.routes[i], float(s[i]))


def build_index(routes: list[SemanticRoute], embed: EmbedFn | None = None) -> SemanticIndex | None:
    return SemanticIndex(routes, embed) if routes else None
