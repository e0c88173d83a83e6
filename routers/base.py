"""The Router protocol and the registry from kind name to class.

Every trained router is a folder with ``router.onnx`` and ``router.json``. ``load_router``
reads ``router.json``'s ``kind`` and instantiates the registered class, which runs the graph
with onnxruntime alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np


@dataclass
class RouterScores:
    """Per-model predicted quality for a batch of prompts.

    ``quality`` has shape (n, len(models)) with values in [0, 1]. Pair routers also fill
    ``strong_win`` (shape (n,)): P(the strong model beats the weak one).
    """

    models: list[str]
    quality: np.ndarray
    strong_win: np.ndarray | None = None
    strong: str | None = None
    weak: str | None = None


@runtime_checkable
class Router(Protocol):
    kind: ClassVar[str]
    models: list[str]
    meta: dict

    def score(self, embeddings: np.ndarray) -> RouterScores:
        """Score a (n, dim) float32 batch of L2-normalised prompt embeddings."""
        ...


REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register(kind: str) -> Callable[[T], T]:
    def deco(cls: T) -> T:
        REGISTRY[kind] = cls
        cls.kind = kind  # type: ignore[attr-defined]
        return cls

    return deco


def load_router(path: str | Path) -> Router:
    """Load a router artifact folder (``router.onnx`` + ``router.json``)."""
    path = Path(path)
    meta = json.loads((path / "router.json").read_text())
    kind = meta["kind"]
    _import_families()
    try:
        cls = REGISTRY[kind]
    except KeyError:
        if kind == "answer-check":  # FrugalGPT's scorer: routers.cascade.AnswerChecker, a policy's cascade stage
            raise ValueError(
                f"{path} is an answer checker (kind 'answer-check'): it scores a model's answer, not a prompt, "
                "so it serves as a policy's `cascade.checker` and cannot route, adapt or be evaluated as a router"
            ) from None
        raise ValueError(f"{path}: unknown router kind {kind!r} (known: {sorted(REGISTRY)})") from None
    return cls.load(path)  # type: ignore[attr-defined]


def encoder_hashes(meta: dict) -> list[str]:
    """The encoders a router was trained on: ``encoder.hash`` plus every ``encoders[].hash``.

    A router trained on both tiers' embeddings (``routers.encoders``) lists both in ``encoders``.
    """
    out = [(meta.get("encoder") or {}).get("hash")] + [(e or {}).get("hash") for e in meta.get("encoders") or []]
    return list(dict.fromkeys(h for h in out if h))


def accepts_encoder(meta: dict, encoder_hash: str) -> bool:
    """Whether a router was trained on ``encoder_hash`` (a router that pins none accepts any)."""
    hashes = encoder_hashes(meta)
    return not hashes or encoder_hash in hashes


def encoder_mismatch(meta: dict, encoder_hash: str) -> str | None:
    """Why a router's embeddings would not match the serving encoder's, or ``None`` if they do."""
    if not accepts_encoder(meta, encoder_hash):
        want = ", ".join(h[:12] for h in encoder_hashes(meta))
        return (
            f"router trained on encoder {want}, serving encoder is {encoder_hash[:12]}: "
            "its scores are off until it is retrained (shunter train / routers.build_defaults)"
        )
    return None


def _import_families() -> None:
    """Import the family modules so they register themselves (serve-time safe imports only)."""
    import importlib

    for name in ("mf", "cluster", "cascade", "cost", "random", "knn", "prior", "adapt"):
        try:
            importlib.import_module(f"routers.{name}")
        except ModuleNotFoundError as exc:  # a family not written yet
            if exc.name != f"routers.{name}":
                raise
