"""Progress bars for long offline jobs (embedding, training): count, rate and ETA on stderr.

``with bar("embedding", total=13040, unit="prompts") as b: b.advance(32)``. Disabled bars
cost nothing; on a terminal rich redraws the bar in place, elsewhere (CI logs, pipes) it prints
the final state once. rich comes with typer, so this works without the ``train`` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Bar:
    """One task of a rich ``Progress`` (or nothing, when disabled)."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update(self, *, completed: int | None = None, total: int | None = None, description: str | None = None) -> None:
        if self._progress is None:
            return
        kw: dict[str, Any] = {}
        if completed is not None:
            kw["completed"] = completed
        if total is not None:
            kw["total"] = total
        if description is not None:
            kw["description"] = description
        self._progress.update(self._task, **kw)


@contextmanager
def bar(description: str, total: int | None, unit: str = "", enabled: bool = True) -> Iterator[Bar]:
    """A progress bar for ``total`` items (``None``: unknown, the bar pulses and shows elapsed time)."""
    if not enabled:
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield Bar(progress, progress.add_task(description, total=total))
