"""One progress facade: `with progress("Cleaning", total=n) as pb: pb.update()`."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

if TYPE_CHECKING:
    from collections.abc import Iterator

Backend = Literal["rich", "none"]
_backend: Backend = "none"


def set_progress_backend(backend: Backend) -> None:
    """Choose the backend once per process (the CLI picks rich on a terminal)."""
    global _backend
    _backend = backend


class Progress:
    """A handle that advances one task; a no-op with the `none` backend."""

    def __init__(self, bar: RichProgress | None, task: TaskID | None) -> None:
        self._bar, self._task = bar, task

    def update(self, advance: float = 1, description: str | None = None) -> None:
        """Advance the bar, optionally renaming the current step."""
        if self._bar is not None and self._task is not None:
            if description is None:
                self._bar.update(self._task, advance=advance)
            else:
                self._bar.update(self._task, advance=advance, description=description)


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Progress]:
    """Show a progress bar on stderr while the block runs."""
    if _backend == "none":
        yield Progress(None, None)
        return
    console = Console(file=sys.stderr)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
    )
    with RichProgress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield Progress(bar, task)
