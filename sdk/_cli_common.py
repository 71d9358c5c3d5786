"""What the ``rayfn`` command line's modules share: consoles, the one-line error
wrapper, progress bars, and a few lookups."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import ray
import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rayfn import _connection, _progress
from rayfn.exception import Error, InvalidError

# soft_wrap: messages stay one line however narrow the terminal (or pipe) is.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class ProgressBars:
    """Rich progress bars on stderr for map() results and deploy steps (rayfn/_progress)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        )

    def start(self, description: str, total: int | None) -> Callable[[int], None]:
        task = self.progress.add_task(description, total=total)
        return lambda n: self.progress.advance(task, n)

    @contextlib.contextmanager
    def shown(self) -> Iterator[None]:
        with self.progress, _progress.reporting(self):
            yield


def friendly(command: Callable[..., None]) -> Callable[..., None]:
    """Print rayfn errors as one line and exit 1, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except Error as exc:
            for note in getattr(exc, "__notes__", ()):  # e.g. the user's own traceback
                err.print(note, highlight=False, markup=False)
            # Escaped: a message quotes user input, which may look like rich markup.
            err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def print_table(table: Table) -> None:
    """Print ``table`` at its full width, however narrow the terminal or pipe: cut
    cells (a call id as ``fc-0-1-…``) cannot be copied."""
    needed = Measurement.get(out, out.options.update_width(10_000), table).maximum
    # A console of that width on the same stream (print's own width cannot exceed it).
    Console(file=out.file, width=max(out.width, needed), soft_wrap=True).print(table)


def dashboard_address() -> str:
    _connection.connect()
    url = ray._private.worker.get_dashboard_url()
    if not url:
        raise InvalidError("This cluster runs no dashboard, which Ray's log API needs.")
    return url if url.startswith("http") else f"http://{url}"


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
