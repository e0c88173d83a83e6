"""One table of which model names in the public data sets are the same model.

The universal prior (``routers.prior``) learns one ability vector per **canonical** model, so
outcomes recorded under different names in different data sets train the same ability:

- Mixtral-8x7B-Instruct is ``mistralai/Mixtral-8x7B-Instruct-v0.1`` in RouteLLM's MMLU
  evals, ``mistralai/mixtral-8x7b-chat`` in RouterBench and ``mixtral-8x7b-instruct-v0.1`` in
  LLMRouter's ``models.json`` (LLMRouter lists its price but ``train.json`` holds no outcome
  of it; the alias still lets a policy name it);
- GPT-4-1106 is ``gpt-4-1106-preview`` in both MMLU and RouterBench.

Every other model appears in one data set only. Models with similar names that are different
checkpoints are **not** tied (RouterBench's ``mistralai/mistral-7b-chat`` is Mistral-7B-Instruct
v0.1, LLMRouter's ``mistral-7b-instruct-v0.3`` is v0.3; Llama-2-70B is not Llama-3-70B).

Serve-time safe (no imports beyond the standard library).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# canonical name -> every other name the same model goes by in the shared data
IDENTITIES: dict[str, tuple[str, ...]] = {
    "mistralai/Mixtral-8x7B-Instruct-v0.1": ("mistralai/mixtral-8x7b-chat", "mixtral-8x7b-instruct-v0.1"),
    "gpt-4-1106-preview": (),
}

ALIASES: dict[str, str] = {alias: canon for canon, names in IDENTITIES.items() for alias in names}


def canonical(name: str) -> str:
    """The canonical name of ``name`` (itself when it has no declared identity)."""
    return ALIASES.get(name, name)


def aliases_of(models: Iterable[str]) -> dict[str, str]:
    """``{alias: canonical}`` for every declared alias of the given canonical models."""
    wanted = set(models)
    return {a: c for a, c in ALIASES.items() if c in wanted}


def find_model(name: str, models: Sequence[str], aliases: dict[str, str] | None = None) -> str | None:
    """``name`` as ``models`` spell it: itself, else the one that is the same model by the table
    above or by a router's declared ``aliases`` (``{alias: canonical}``); ``None`` when absent.
    A pair router trained on RouteLLM's names scores RouterBench's rows this way."""
    if name in models:
        return name
    extra = aliases or {}

    def canon(n: str) -> str:
        return extra.get(n) or canonical(n)

    want = canon(name)
    return next((m for m in models if canon(m) == want), None)
