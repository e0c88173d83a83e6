"""Secrets: the one place that resolves ``os.environ/NAME`` references, and keeps the values out of logs.

``resolve(ref)`` is how every policy-file value that may name an environment variable is read
(``upstreams.*.api_key``, ``server.admin_key``, ``server.redis_url``):

- ``None`` or ``""`` -> ``None``;
- ``"os.environ/NAME"`` -> the value of ``NAME``, or ``None`` when it is unset or empty;
- anything else is a literal and is returned as written. The schema refuses literals where the
  value is a credential (``api_key``, ``admin_key``), so those always come from the environment.

``redact(text)`` replaces every known secret value (the upstream ``api_key`` environment
variables named in the policy file, the admin key) with ``[REDACTED]``. ``install_log_redaction``
wraps the logging record factory so every log line, arguments and tracebacks included, passes
through it, whatever logger or handler emits it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Any

ENV_REF = re.compile(r"^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$")
MASK = "[REDACTED]"
_ENV_NAMES: set[str] = {"SHUNTER_ADMIN_KEY"}
_MIN_LEN = 8  # never mask short values that would mangle ordinary text


def env_name(ref: str | None) -> str | None:
    """``NAME`` for an ``os.environ/NAME`` reference, else ``None``."""
    m = ENV_REF.match(ref or "")
    return m.group(1) if m else None


def resolve(ref: str | None) -> str | None:
    """A policy-file value that may be an ``os.environ/NAME`` reference (rules in the module doc)."""
    if not ref:
        return None
    name = env_name(ref)
    if name is None:
        return ref
    return os.environ.get(name) or None


def require_ref(value: str | None, example: str) -> str | None:
    """A credential in the policy file: only ``os.environ/NAME`` is accepted, never the value itself."""
    if value is not None and env_name(value) is None:
        raise ValueError(f"must be an environment reference like 'os.environ/{example}', not a literal key")
    return value


def admin_key(server: Any) -> str | None:
    """The admin key (``server.admin_key``), or ``None`` when admin endpoints are disabled."""
    return resolve(server.admin_key)


def register(cfg: Any) -> None:
    """Remember the environment variables that hold secrets in this configuration."""
    for ref in (*(up.api_key for up in cfg.upstreams.values()), cfg.server.admin_key, cfg.server.redis_url):
        name = env_name(ref)
        if name:
            _ENV_NAMES.add(name)


def _values() -> Iterable[str]:
    for name in _ENV_NAMES:
        v = os.environ.get(name)
        if v and len(v) >= _MIN_LEN:
            yield v


def redact(text: str) -> str:
    for v in _values():
        if v in text:
            text = text.replace(v, MASK)
    return text


def redact_bytes(data: bytes) -> bytes:
    """``redact`` for bytes on their way to a client (relayed stream events)."""
    for v in _values():
        b = v.encode()
        if b in data:
            data = data.replace(b, MASK.encode())
    return data


def install_log_redaction() -> None:
    old = logging.getLogRecordFactory()
    if getattr(old, "_shunter_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        rec = old(*args, **kwargs)
        try:
            msg = rec.getMessage()
        except Exception:  # a broken format string: leave it for the handler to report
            return rec
        clean = redact(msg)
        if clean != msg:
            rec.msg, rec.args = clean, None
        if rec.exc_info and rec.exc_info[0] is not None:
            text = logging.Formatter().formatException(rec.exc_info)
            rec.exc_text = redact(text)
        return rec

    factory._shunter_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
