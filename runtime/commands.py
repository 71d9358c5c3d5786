"""What the call book (runtime/book.py) and the registry say to each other: the
function version a launch runs (``Policy``) and the commands the book returns for the
registry to carry out in Ray. Plain records, no Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rayfn.runtime.identity import FunctionKey as Key
from rayfn.runtime.identity import FunctionVersion as Version
from rayfn.runtime.retries import RetryPolicy


@dataclass(frozen=True)
class Policy:
    """What the book needs to know of a deployed function version."""

    version: Version
    label: str  # "app.function", for messages
    max_containers: int | None = None
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    startup_timeout: float | None = None
    can_pack: bool = False
    pooled: bool = False  # a class's method: its pool of containers says how many fit
    # @batched: up to this many queued calls go in one call of the function (0: not
    # batched), each launch waiting up to batch_wait seconds for a full batch.
    batch: int = 0
    batch_wait: float = 0.0
    needs: str = "1 CPU"  # what it asks of a node, for the startup timeout's message
    runner: Any = field(default=None, compare=False, repr=False)  # the shell's own

    @property
    def key(self) -> Key:
        return self.version.key


# -- commands -----------------------------------------------------------------------


class LaunchItem(NamedTuple):
    """One call of a launch."""

    call_id: str
    attempt: int  # its number, from 1
    args: bytes  # pickled (args, kwargs)
    start_by: float | None = None  # the worker does not start it after (expires_in)


@dataclass(frozen=True, slots=True)
class Launch:
    """Hand these calls to Ray as one task (several: a pack that runs them in turn)."""

    policy: Policy
    calls: tuple[LaunchItem, ...]


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call ``timer_fired`` for this call at ``at`` (None: stop its timer)."""

    call_id: str
    at: float | None


@dataclass(frozen=True, slots=True)
class Kill:
    """Stop the call's running attempt (its task's worker, or its container)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The call reached a terminal state: wake whoever waits for it."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Pump:
    """Calls of this function may be launched now, by its current version (``known``
    if it has none any more)."""

    key: Key
    known: Policy | None


@dataclass(frozen=True, slots=True)
class PumpAt:
    """Pump this function again at ``at`` (a batch waiting to fill up)."""

    key: Key
    at: float
    known: Policy | None


@dataclass(frozen=True, slots=True)
class Deliver:
    """Post the call's end to its webhook (one try)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Warn:
    message: str


Command = Launch | SetTimer | Kill | Finished | Pump | PumpAt | Deliver | Warn
