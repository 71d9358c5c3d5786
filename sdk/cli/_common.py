"""What the ``rayfn`` command line's modules share: consoles, the one error handler,
the options more than one command takes, progress bars, and a few lookups."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rayfn import _connection, _progress
from rayfn.exception import Error, InvalidError
from rayfn.runtime import _ray_compat as ray_compat

# soft_wrap: messages stay one line however narrow the terminal (or pipe) is.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


# -- the options and arguments that more than one command takes -----------------------------

AppFile = Annotated[
    str, typer.Argument(help="Python file defining an App; FILE::VARIABLE picks one.")
]
AppName = Annotated[str, typer.Argument(help="App name")]
CallId = Annotated[str, typer.Argument(help="Call id, fc-...")]
SecretName = Annotated[str, typer.Argument(help="Secret name")]
LauncherConfig = Annotated[Path, typer.Argument(help="Ray cluster launcher config.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


# -- errors -------------------------------------------------------------------------------


class OneLineErrors(typer.core.TyperGroup):
    """The root command group. A rayfn ``Error`` raised by any command under it prints
    as one line, ``Error: ...`` on stderr, after its notes (e.g. the user's own
    traceback), and exits 1, instead of a traceback. Anything else is a bug in rayfn
    and keeps its traceback; failures a command expects (a pending call, Ctrl-C) it
    answers itself, or turns into an ``Error``."""

    # ctx is the click Context that typer vendors privately (typer._click), hence Any.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Error as exc:
            for note in getattr(exc, "__notes__", ()):
                err.print(note, highlight=False, markup=False)
            # Escaped: a message quotes user input, which may look like rich markup.
            err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None


# -- output -------------------------------------------------------------------------------


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


def print_table(table: Table) -> None:
    """Print ``table`` at its full width, however narrow the terminal or pipe: cut
    cells (a call id as ``fc-0-1-…``) cannot be copied."""
    needed = Measurement.get(out, out.options.update_width(10_000), table).maximum
    # A console of that width on the same stream (print's own width cannot exceed it).
    Console(file=out.file, width=max(out.width, needed), soft_wrap=True).print(table)


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


# -- lookups ------------------------------------------------------------------------------


def dashboard_address() -> str:
    _connection.connect()
    url = ray_compat.dashboard_url()
    if not url:
        raise InvalidError("This cluster runs no dashboard, which Ray's log API needs.")
    return url if url.startswith("http") else f"http://{url}"
