"""Keep upstream credentials out of logs and error bodies.

``redact(text)`` replaces every known secret value (the upstream ``api_key`` environment
variables named in the policy file, the admin key) with ``[REDACTED]``. ``install_log_redaction``
wraps the logging record factory so every log line, arguments and tracebacks included, passes
through it, whatever logger or handler emits it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"
_ENV_NAMES: set[str] = {"SHUNTER_ADMIN_KEY"}
_MIN_LEN = 8  # never mask short values that would mangle ordinary text


def register(cfg: Any) -> None:
    """Remember the environment variables that hold secrets in this configuration."""
    for up in cfg.upstreams.values():
        env = up.key_env()
        if env:
            _ENV_NAMES.add(env)
    for ref in (cfg.server.admin_key, cfg.server.redis_url):
        if ref and ref.startswith("os.environ/"):
            _ENV_NAMES.add(ref.split("/", 1)[1])


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
