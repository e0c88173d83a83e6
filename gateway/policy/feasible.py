"""Requests no candidate could ever serve as written: a 400 with the reason, not a 503.

A 503 tells a client to retry (the openai SDK does, twice), which is right while upstreams are
down or cooling off, and wrong when the request itself is the problem: ``max_tokens`` beyond every
context window, a prompt longer than all of them, an image for models without vision. When the
policy finds no usable candidate, ``refusal`` looks at every candidate and fallback again, and
answers 400 when none of them could take the request even if all were healthy.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import APIError


def _why_never(client: Any, needs: set[str], prompt_tokens: int, max_out: int) -> tuple[str, str] | None:
    """(kind, reason) when this upstream can never serve the request as written; None if it could."""
    missing = needs - set(client.cfg.capabilities)
    if missing:
        return "capability", f"lacks {', '.join(sorted(missing))}"
    window = client.cfg.context_window
    if prompt_tokens > window:
        return "prompt", f"the prompt of ~{prompt_tokens} tokens exceeds its context window of {window}"
    if prompt_tokens + max_out > window:
        return (
            "max_tokens",
            f"the prompt of ~{prompt_tokens} tokens plus max_tokens {max_out} exceeds its context window of {window}",
        )
    return None


def refusal(
    rt: Any, policy: str, names: list[str], needs: set[str], prompt_tokens: int, max_out: int
) -> APIError | None:
    """The 400 to answer when none of ``names`` could ever serve the request; None otherwise."""
    reasons: dict[str, tuple[str, str]] = {}
    for name in dict.fromkeys(names):
        client = rt.clients.get(name)
        why = _why_never(client, needs, prompt_tokens, max_out) if client is not None else None
        if why is None:
            return None  # this one could serve it once healthy: a 503 is the honest answer
        reasons[name] = why
    if not reasons:
        return None
    kinds = {k for k, _ in reasons.values()}
    code = "context_length_exceeded" if kinds <= {"prompt", "max_tokens"} else "unsupported_request"
    param = "max_tokens" if kinds == {"max_tokens"} else ("messages" if kinds == {"prompt"} else None)
    detail = "; ".join(f"{n}: {why}" for n, (_, why) in reasons.items())
    return APIError(
        400, f"No candidate of policy '{policy}' can serve this request as written: {detail}.", code=code, param=param
    )
