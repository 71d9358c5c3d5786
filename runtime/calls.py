"""The call book's state of calls and their attempts (runtime/book.py). Compact: one
``Call`` per tracked call, slots only, args dropped as soon as no attempt can need
them. No Ray, no clock: every time comes from the caller."""

from __future__ import annotations

import enum
from typing import Any

from rayfn.records import AttemptInfo, CallInfo, CallStatus, FailureKind, Progress
from rayfn.runtime.expiry import expires_at
from rayfn.runtime.identity import FunctionKey, app_of
from rayfn.runtime.records import RemoteFailure

# The outcome of an attempt the registry lost by restarting while it ran: the call runs
# again, and the attempt does not count against the function's retries.
INTERRUPTED = "interrupted"


class Timer(enum.Enum):
    """What a call's one timer is for."""

    STARTUP = FailureKind.NOT_STARTED  # kill the attempt if it has not started by then
    TIMEOUT = FailureKind.TIMED_OUT  # kill the attempt if it still runs by then
    RETRY = "retry"  # queue the call again: its backoff delay is over


class Attempt:
    """One try of a call, from hand-off to Ray until it ends."""

    __slots__ = ("error", "finished_at", "number", "outcome", "started_at", "submitted_at")

    def __init__(self, number: int, submitted_at: float) -> None:
        self.number = number
        self.submitted_at = submitted_at
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.outcome: str | None = None
        self.error: str | None = None

    def end(self, outcome: str, error: str | None, at: float) -> None:
        self.outcome = outcome
        self.error = error
        self.finished_at = at

    def info(self) -> AttemptInfo:
        return AttemptInfo(*self.record())

    def record(self) -> tuple[Any, ...]:
        """Its fields in ``AttemptInfo``'s order (the journal keeps this tuple)."""
        return (
            self.number,
            self.submitted_at,
            self.started_at,
            self.finished_at,
            self.outcome,
            self.error,
        )

    @classmethod
    def from_record(cls, record: tuple[Any, ...]) -> Attempt:
        attempt = cls(record[0], record[1])
        attempt.started_at, attempt.finished_at, attempt.outcome, attempt.error = record[2:]
        return attempt


class Call:
    """A call as the book tracks it."""

    __slots__ = (
        "app",
        "args",
        "attempts",
        "call_id",
        "created_at",
        "failure",
        "finished_at",
        "function",
        "idempotency",
        "inline",
        "interrupt",
        "journaled",
        "large",
        "packed",
        "parent",
        "payload",
        "progress",
        "result_ttl",
        "retry_at",
        "retry_base",
        "status",
        "timer",
        "token",
    )

    def __init__(
        self,
        call_id: str,
        app: str,
        function: str,
        args: bytes | None,
        result_ttl: float,
        created_at: float,
        parent: str | None = None,
        token: str | None = None,
    ) -> None:
        self.call_id = call_id
        self.app = app  # the deployment key ("app", or "app@ep-..." when ephemeral)
        self.function = function
        self.args = args  # kept while an attempt may need them
        self.result_ttl = result_ttl
        self.created_at = created_at
        self.parent = parent  # the call it was spawned from, if any
        self.token = token  # of the spawn round trip that sent it (Book.batches)
        self.status = CallStatus.QUEUED
        self.finished_at: float | None = None
        self.attempts: list[Attempt] = []
        self.inline: bytes | None = None  # a small result, pickled
        self.large = False  # it succeeded with a result too large to ride inline
        self.payload: Any = None  # the shell's handle on a large result (an ObjectRef)
        self.failure: RemoteFailure | None = None
        self.timer: tuple[Timer, int] | None = None  # what its one timer is for, attempt
        self.retry_at: float | None = None  # when a RETRYING call is queued again
        self.interrupt: FailureKind | None = None  # why rayfn is killing the attempt
        self.packed = False  # its attempt shares a task with other calls (a pack)
        self.journaled = False  # its args are in the journal already
        self.progress: Progress | None = None  # what it last said (set_progress)
        self.retry_base = 0  # attempts before its last requeue: not counted by its retries
        # (idempotency key, SHA-256 of its args) when it was spawned with a key
        self.idempotency: tuple[str, str] | None = None

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.app, self.function)

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def tries(self) -> int:
        """Attempts that count against the retry policy (not those the registry lost)."""
        return sum(1 for a in self.attempts[self.retry_base :] if a.outcome != INTERRUPTED)

    def expired(self, now: float) -> bool:
        return self.finished_at is not None and now >= expires_at(self.finished_at, self.result_ttl)

    def is_open(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` is this call's latest and still on."""
        return (
            len(self.attempts) == attempt
            and self.attempts[-1].outcome is None
            and not self.status.is_terminal
        )

    def info(self) -> CallInfo:
        started = next((a.started_at for a in self.attempts if a.started_at), None)
        error = self.failure.summary if self.failure else None
        if error is None and self.status is CallStatus.FAILED and self.attempts:
            error = self.attempts[-1].error
        return CallInfo(
            call_id=self.call_id,
            app=app_of(self.app),
            function=self.function,
            status=self.status,
            created_at=self.created_at,
            started_at=started,
            finished_at=self.finished_at,
            error=error,
            attempts=tuple(a.info() for a in self.attempts),
            progress=self.progress,
        )

    # -- the journal's form (runtime/journal.py): a plain tuple, last one wins ----------

    def record(self) -> tuple[Any, ...]:
        """The call's durable state; its args only the first time (and never once no
        attempt can need them), so a call's later records stay small."""
        keep_args = not self.journaled and self.args is not None
        self.journaled = True
        return (
            self.call_id,
            self.app,
            self.function,
            self.result_ttl,
            self.created_at,
            self.parent,
            self.status.value,
            tuple(a.record() for a in self.attempts),
            self.finished_at,
            self.inline,
            self.large,
            self.failure,
            self.retry_at,
            self.args if keep_args else None,
            self.token,
            self.progress,
            self.retry_base,
            self.idempotency,
        )

    @classmethod
    def from_record(cls, record: tuple[Any, ...], earlier: Call | None) -> Call:
        """The call a record describes; ``earlier`` is what the journal said before
        (its args carry over)."""
        (call_id, app, function, ttl, created_at, parent, status, attempts) = record[:8]
        finished_at, inline, large, failure, retry_at, args, token = record[8:15]
        progress = record[15] if len(record) > 15 else None  # journals before it: none
        retry_base = record[16] if len(record) > 16 else 0
        idempotency = record[17] if len(record) > 17 else None
        call = cls(call_id, app, function, args, ttl, created_at, parent, token)
        if args is None and earlier is not None:
            call.args = earlier.args
        call.status = CallStatus(status)
        call.attempts = [Attempt.from_record(a) for a in attempts]
        call.finished_at, call.inline, call.large = finished_at, inline, large
        call.failure, call.retry_at = failure, retry_at
        call.progress = progress
        call.retry_base = retry_base
        call.idempotency = idempotency
        call.journaled = True
        return call
