"""Shared Rich console and progress bars for long work."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=False, highlight=False)
error_console = Console(stderr=True, highlight=False)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """Yield an ``update(done, total)`` callback drawing one Rich progress bar."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    ) as progress:
        task_id = progress.add_task(description, total=None)

        def update(done: int, total: int, note: str = "") -> None:
            """``note`` (e.g. a second count) follows the description."""
            if note:
                progress.update(task_id, completed=done, total=total, description=f"{description} ({note})")
            else:
                progress.update(task_id, completed=done, total=total)

        yield update
