"""The gateway's own log level (``SHUNTER_LOG_LEVEL``), applied by ``create_app``."""

from __future__ import annotations

import logging

LEVELS = {"critical": 50, "error": 40, "warning": 30, "info": 20, "debug": 10, "trace": 5}  # trace: uvicorn's 5
_FORMAT = "%(levelname)s:     %(name)s: %(message)s"  # beside uvicorn's own "INFO:     ..." lines


def configure(level: str) -> None:
    """Set the level of the ``shunter`` loggers; give them a stderr handler when nothing else logs.

    uvicorn configures only its own loggers, so without a handler here the gateway's lines would
    reach stderr only from WARNING up (Python's last-resort handler). Where the root logger
    already has handlers (an embedding application, pytest), records propagate to them instead.
    """
    log = logging.getLogger("shunter")
    log.setLevel(LEVELS[level])
    if logging.getLogger().handlers or any(getattr(h, "_shunter", False) for h in log.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler._shunter = True  # type: ignore[attr-defined]
    log.addHandler(handler)
