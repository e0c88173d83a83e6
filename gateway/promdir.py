"""Prometheus multiprocess directory for ``shunter serve --workers N``.

prometheus-client's multiprocess mode needs ``PROMETHEUS_MULTIPROC_DIR`` set before
``gateway.metrics`` is imported in any worker, and the directory must start empty on each server
start (stale files from an earlier run would be summed in). uvicorn spawns workers with a fresh
interpreter that inherits the environment, so setting it in the parent before ``uvicorn.run``
is enough.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int) -> Callable[[], None]:
    """Set up the directory when needed; return a cleanup callable for after the server exits.

    - an operator-set ``PROMETHEUS_MULTIPROC_DIR`` is kept but emptied of old ``*.db`` files;
    - otherwise, with more than one worker, a fresh temporary directory is created and removed
      on exit;
    - with one worker and no operator setting, nothing changes (plain in-process registry).
    """
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for f in path.glob("*.db"):
            f.unlink(missing_ok=True)
        return lambda: None
    if workers <= 1:
        return lambda: None
    path = Path(tempfile.mkdtemp(prefix="shunter-prom-"))
    os.environ[ENV] = str(path)

    def cleanup() -> None:
        os.environ.pop(ENV, None)
        shutil.rmtree(path, ignore_errors=True)

    return cleanup
