"""Session stickiness: a conversation stays on the model it started with, for a TTL.

The session key comes from the ``x-shunter-session`` header (or ``extra_body``
``shunter.session``) and/or the OpenAI ``user`` field, as the policy's ``sticky.key`` says.
The model is stored in ``SharedState`` (in-process, or Redis across replicas) under a hash of
the key; each request of the session refreshes the TTL (a sliding window).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson

from gateway.policy.schema import Sticky

HEADER = "x-shunter-session"
log = logging.getLogger("shunter.sticky")


def session_key(cfg: Sticky | None, req: Any, headers: dict[str, str]) -> str | None:
    """The session identifier for this request, or None when stickiness does not apply."""
    if cfg is None:
        return None
    opts = getattr(req, "shunter", None)
    from_header = headers.get(HEADER) or (opts.session if opts is not None else None)
    from_user = getattr(req, "user", None)
    if cfg.key == "header":
        key = from_header
    elif cfg.key == "user":
        key = from_user
    else:
        key = from_header or from_user
    return key or None


def _store_key(policy: str, session: str) -> str:
    return f"sticky:{policy}:{hashlib.sha256(session.encode()).hexdigest()[:32]}"


async def lookup(shared: Any, policy: str, session: str) -> dict | None:
    """The session's pinned ``{"model", "effort"}``; None when unknown or the store is unreachable."""
    try:
        raw = await shared.get(_store_key(policy, session))
    except Exception as exc:  # a Redis outage must not fail requests: route afresh
        log.warning("sticky lookup failed (%s); deciding afresh", type(exc).__name__)
        return None
    if not raw:
        return None
    try:
        val = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return val if isinstance(val, dict) and isinstance(val.get("model"), str) else None


async def remember(shared: Any, policy: str, session: str, model: str, effort: str | None, ttl: float) -> None:
    """Pin (or re-pin) the session and restart its TTL; a store failure is logged, not raised."""
    try:
        await shared.set(_store_key(policy, session), orjson.dumps({"model": model, "effort": effort}).decode(), ttl)
    except Exception as exc:
        log.warning("sticky store failed (%s); the session is not pinned", type(exc).__name__)
