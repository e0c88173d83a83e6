"""The reasoning switch: when to ask a model to reason, and how hard.

A policy's ``reasoning`` rules read the learned router's scores (``min_strong_win`` for pair
routers, ``max_quality`` for any router: a low best predicted quality means a hard prompt).
Rules and semantic routes can set ``reasoning_effort`` too. The effort is sent upstream only to
models with the ``reasoning`` capability, and never replaces a ``reasoning_effort`` the client
set itself.
"""

from __future__ import annotations

from typing import Any

from gateway.policy.schema import ReasoningRule


def pick(
    rules: list[ReasoningRule], best_quality: float | None, strong_win: float | None
) -> tuple[ReasoningRule, str] | None:
    """The first rule that holds, with why; None when none does (or there are no scores)."""
    for r in rules:
        why = []
        if r.min_strong_win is not None:
            if strong_win is None or strong_win < r.min_strong_win:
                continue
            why.append(f"strong_win={strong_win:.3f}>={r.min_strong_win:g}")
        if r.max_quality is not None:
            if best_quality is None or best_quality > r.max_quality:
                continue
            why.append(f"best quality={best_quality:.3f}<={r.max_quality:g}")
        return r, " and ".join(why)
    return None


def supports(client: Any) -> bool:
    return "reasoning" in (client.cfg.capabilities or [])


def apply(body: dict, client: Any, effort: str | None) -> dict:
    """Add ``reasoning_effort`` to an upstream body when the model can reason and the client did not set it."""
    if effort and supports(client) and not body.get("reasoning_effort"):
        body["reasoning_effort"] = effort
    return body
