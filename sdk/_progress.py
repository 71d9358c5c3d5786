"""Progress of long client-side work (``map`` results, a deploy's steps) for whoever
wants to show it: the CLI installs a reporter drawing rich progress bars; library
code asks for the current one and, when there is none, costs nothing."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class Reporter(Protocol):
    def start(self, description: str, total: int | None) -> Callable[[int], None]:
        """Begin a bar; returns what advances it by n."""
        ...


_current: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "rayfn_progress", default=None
)


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    token = _current.set(reporter)
    try:
        yield
    finally:
        _current.reset(token)


def track(items: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    """``items``, advancing a bar per item when a reporter is installed."""
    reporter = _current.get()
    if reporter is None:
        yield from items
        return
    advance = reporter.start(description, total)
    for item in items:
        yield item
        advance(1)


def step(description: str, total: int | None = None) -> Callable[[int], None]:
    """A bar advanced by hand; a no-op without a reporter."""
    reporter = _current.get()
    return reporter.start(description, total) if reporter is not None else _ignore


def _ignore(n: int) -> None:
    return None
