"""The call book's state of calls and their attempts (runtime/book.py). Compact: one
``Call`` per tracked call, slots only, args dropped as soon as no attempt can need
them. No Ray, no clock: every time comes from the caller."""

from __future__ import annotations

import bisect
import enum
from collections import deque
from collections.abc import Iterator
from typing import Any

from rayfn.records import AttemptInfo, CallInfo, CallStatus, FailureKind, Progress
from rayfn.runtime.expiry import expires_at
from rayfn.runtime.identity import FunctionKey, app_of
from rayfn.runtime.records import RemoteFailure
from rayfn.runtime.webhooks import Deliveries

# The outcome of an attempt the registry lost by restarting while it ran: the call runs
# again, and the attempt does not count against the function's retries.
INTERRUPTED = "interrupted"


class Timer(enum.Enum):
    """What a call's one timer is for."""

    STARTUP = FailureKind.NOT_STARTED  # kill the attempt if it has not started by then
    TIMEOUT = FailureKind.TIMED_OUT  # kill the attempt if it still runs by then
    RETRY = "retry"  # queue the call again: its backoff delay is over
    START = "start"  # queue a SCHEDULED call: its time has come
    START_BY = "start_by"  # end a call still queued: its expires_in deadline has passed
    DELIVER = "deliver"  # try its webhook again (the call has ended)


class Attempt:
    """One try of a call, from hand-off to Ray until it ends."""

    __slots__ = (
        "error",
        "finished_at",
        "number",
        "outcome",
        "started_at",
        "submitted_at",
        "task_id",
    )

    def __init__(self, number: int, submitted_at: float) -> None:
        self.number = number
        self.submitted_at = submitted_at
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.outcome: str | None = None
        self.error: str | None = None
        self.task_id: str | None = None  # Ray's, once handed to Ray (its logs, its node)

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
            self.task_id,
        )

    @classmethod
    def from_record(cls, record: tuple[Any, ...]) -> Attempt:
        attempt = cls(record[0], record[1])
        attempt.started_at, attempt.finished_at, attempt.outcome, attempt.error = record[2:6]
        attempt.task_id = record[6] if len(record) > 6 else None  # journals before it: none
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
        "priority",
        "progress",
        "result_ttl",
        "retry_at",
        "retry_base",
        "scheduled_for",
        "start_by",
        "status",
        "timer",
        "token",
        "webhook",
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
        self.priority = 0  # higher leaves the queue first (CallQueue)
        self.scheduled_for: float | None = None  # SCHEDULED until then (delay=, at=)
        self.start_by: float | None = None  # never started after (expires_in=)
        self.webhook: Deliveries | None = None  # where its end is posted, and how that went

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.app, self.function)

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def has_started(self) -> bool:
        """Whether an attempt of it has started (its ``start_by`` is then over)."""
        return any(a.started_at is not None for a in self.attempts)

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
            priority=self.priority,
            scheduled_for=self.scheduled_for,
            start_by=self.start_by,
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
            self.priority,
            self.scheduled_for,
            self.start_by,
            None if self.webhook is None else self.webhook.record(),
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
        priority, scheduled_for, start_by = record[18:21] if len(record) > 18 else (0, None, None)
        webhook = record[21] if len(record) > 21 else None
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
        call.priority, call.scheduled_for, call.start_by = priority, scheduled_for, start_by
        call.webhook = None if webhook is None else Deliveries.from_record(webhook)
        call.journaled = True
        return call


class CallQueue:
    """One function's queued calls: the highest priority first, in order of arrival
    among equal priorities (a deque per priority level in use). Strict: a lower
    priority waits while any higher one is queued."""

    __slots__ = ("_levels", "_order", "_size")

    def __init__(self) -> None:
        self._levels: dict[int, deque[Call]] = {}
        self._order: list[int] = []  # the levels in use, lowest first
        self._size = 0

    def _level(self, priority: int) -> deque[Call]:
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = deque()
            bisect.insort(self._order, priority)
        return level

    def append(self, call: Call) -> None:
        """At the back of its priority's line."""
        self._level(call.priority).append(call)
        self._size += 1

    def appendleft(self, call: Call) -> None:
        """At the front of its priority's line (a retry, or a pack's unrun call)."""
        self._level(call.priority).appendleft(call)
        self._size += 1

    def popleft(self) -> Call:
        top = self._order[-1]
        level = self._levels[top]
        call = level.popleft()
        if not level:
            del self._levels[top]
            self._order.pop()
        self._size -= 1
        return call

    def first(self) -> Call:
        """The call ``popleft`` would take."""
        return self._levels[self._order[-1]][0]

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Call]:
        for priority in reversed(self._order):
            yield from self._levels[priority]
