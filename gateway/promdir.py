"""Prometheus multiprocess folder for ``shunter serve --workers N``.

prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` from the environment when it is first
imported, and the folder must start empty on each server start (stale files from an earlier run
would be summed in). The serving process never changes its own environment: ``prepared`` gives
the settings a folder (a temporary one with several workers, removed on exit), and each worker
exports it with ``use`` before anything imports prometheus-client.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def prepared(settings: Any) -> Iterator[Any]:
    """The settings with the folder to use, ready; it is removed on exit when it was made here.

    - a folder set by the operator (``PROMETHEUS_MULTIPROC_DIR``) is kept but emptied of old ``*.db`` files;
    - otherwise, with more than one worker, a fresh temporary folder is made;
    - with one worker and none set, nothing changes (plain in-process registry).
    """
    given: Path | None = settings.prometheus_multiproc_dir
    if given:
        given.mkdir(parents=True, exist_ok=True)
        own = f"_{os.getpid()}.db"  # this process may have imported prometheus-client already (the
        for f in given.glob("*.db"):  # policy schema pulls gateway.metrics in); its files are not stale
            if not f.name.endswith(own):
                f.unlink(missing_ok=True)
        yield settings
        return
    if settings.workers <= 1:
        yield settings
        return
    path = Path(tempfile.mkdtemp(prefix="shunter-prom-"))
    try:
        yield settings.model_copy(update={"prometheus_multiproc_dir": path})
    finally:
        shutil.rmtree(path, ignore_errors=True)


def use(path: Path | None) -> None:
    """In a worker, before prometheus-client is imported: hand it the folder (its only interface)."""
    if path is not None and os.environ.get(ENV) != str(path):
        os.environ[ENV] = str(path)
