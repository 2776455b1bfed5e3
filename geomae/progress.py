"""The one look of geomae's rich progress bars (on stderr, so stdout stays for results)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["progress_bar"]


def progress_bar(*, enabled: bool = True, counted: str | None = None) -> Progress:
    """A progress bar: description, bar, ``done/total``, elapsed and remaining time.

    Use it as a context manager (``with progress_bar() as bar: bar.add_task(...)``).

    Args:
        enabled: draw it (False: a silent bar, e.g. ``--no-progress`` or nothing to do).
        counted: a column template shown after ``done/total`` (e.g. ``"scenes,
            {task.fields[tiles]} tiles"``); its fields must be given to ``add_task``.
    """
    columns: list[str | ProgressColumn] = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
    ]
    if counted is not None:
        columns.append(TextColumn(counted))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=Console(stderr=True), disable=not enabled)
