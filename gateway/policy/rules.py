"""Hand-written rules: regex, keywords, header, metadata and prompt-size conditions.

A rule matches when every condition it sets holds. Rules are evaluated in the policy's order,
before semantic routes and the learned router (see ``gateway.policy.engine.decide``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from gateway.policy.schema import Rule


@dataclass
class RuleInput:
    """What rules look at: the routing text, request headers (lower-case names), metadata, size."""

    text: str
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0


@lru_cache(maxsize=1024)
def _keywords(words: tuple[str, ...]) -> re.Pattern[str]:
    alts = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True) if w.strip())
    return re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.IGNORECASE)


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _value_ok(got: Any, want: Any) -> bool:
    if got is None:
        return False
    wants = want if isinstance(want, list) else [want]
    g = _norm(got)
    return any(g == _norm(w) for w in wants)


def _norm(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v).strip().lower()


def matches(rule: Rule, x: RuleInput) -> bool:
    """True when every condition of ``rule`` holds for the request."""
    if rule.min_tokens is not None and x.prompt_tokens < rule.min_tokens:
        return False
    if rule.max_tokens is not None and x.prompt_tokens > rule.max_tokens:
        return False
    for name, want in rule.header.items():
        if not _value_ok(x.headers.get(name.lower()), want):
            return False
    for key, value in rule.metadata.items():
        if not _value_ok((x.metadata or {}).get(key), value):
            return False
    if rule.keywords and not _keywords(tuple(rule.keywords)).search(x.text):
        return False
    if rule.regex and not _regex(rule.regex).search(x.text):
        return False
    return True


def describe(rule: Rule) -> str:
    """A short human description of a rule's conditions, for the decision detail."""
    parts = []
    if rule.regex:
        parts.append(f"regex {rule.regex!r}")
    if rule.keywords:
        parts.append("keywords")
    parts += [f"header {k}" for k in rule.header]
    parts += [f"metadata {k}" for k in rule.metadata]
    if rule.min_tokens is not None:
        parts.append(f"tokens>={rule.min_tokens}")
    if rule.max_tokens is not None:
        parts.append(f"tokens<={rule.max_tokens}")
    return ", ".join(parts)
