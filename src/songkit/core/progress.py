"""Progress bars and log lines, on stderr only.

stdout carries results; everything a person watches goes to stderr. Progress bars
show only when stderr is a terminal; ``songkit -q`` silences bars and log lines.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_quiet = False
_console = None


def set_quiet(quiet: bool) -> None:
    """Silence progress bars and log lines (``songkit -q``)."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet


def console():
    """The rich console on stderr (created on first use)."""
    global _console
    if _console is None or _console.file is not sys.stderr:
        from rich.console import Console

        _console = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    return _console


def log(message: str) -> None:
    """A log line on stderr, unless quiet."""
    if not _quiet:
        console().print(message, markup=False)


def show_bars() -> bool:
    return not _quiet and sys.stderr.isatty()


def make_progress(transient: bool = True):
    """A rich Progress with rate and ETA on stderr, disabled when quiet or not a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console(),
        transient=transient,
        disable=not show_bars(),
    )


def track(items: Iterable[T], total: int | None = None, description: str = "", unit: str = "it") -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (rate and ETA) on stderr."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if not show_bars():
        yield from items
        return
    with make_progress() as progress:
        task = progress.add_task(description, total=total, rate="", info="")
        for item in items:
            yield item
            progress.advance(task)
            speed = progress.tasks[0].speed
            if speed:
                progress.update(task, rate=f"{speed:.1f} {unit}/s")
