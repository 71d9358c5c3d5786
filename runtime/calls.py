"""The registry's in-memory state of calls and their attempts. Compact: one ``Call`` per
tracked call, slots only, args dropped as soon as no attempt can need them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ray

from rayfn.runtime.expiry import expires_at
from rayfn.runtime.records import (
    AttemptInfo,
    CallInfo,
    CallStatus,
    FailureKind,
    RemoteFailure,
)


class Attempt:
    """One try of a call, from hand-off to Ray until it ends."""

    __slots__ = ("error", "finished_at", "number", "outcome", "started_at", "submitted_at")

    def __init__(self, number: int) -> None:
        self.number = number
        self.submitted_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.outcome: str | None = None
        self.error: str | None = None

    def end(self, outcome: str, error: str | None = None, at: float | None = None) -> None:
        self.outcome = outcome
        self.error = error
        self.finished_at = at if at is not None else time.time()

    def info(self) -> AttemptInfo:
        return AttemptInfo(
            self.number,
            self.submitted_at,
            self.started_at,
            self.finished_at,
            self.outcome,
            self.error,
        )


class Call:
    """A call as the registry tracks it."""

    __slots__ = (
        "app",
        "args",
        "attempts",
        "call_id",
        "container",
        "created_at",
        "done",
        "failure",
        "finished_at",
        "function",
        "inline",
        "interrupt",
        "packed",
        "payload",
        "result_ttl",
        "status",
        "task",
        "timer",
    )

    def __init__(
        self, call_id: str, app: str, function: str, args: bytes, result_ttl: float
    ) -> None:
        self.call_id = call_id
        self.app = app  # the deployment key ("app", or "app@ep-..." when ephemeral)
        self.function = function
        self.args: bytes | None = args  # kept while a retry may need them
        self.result_ttl = result_ttl
        self.status = CallStatus.QUEUED
        self.created_at = time.time()
        self.finished_at: float | None = None
        self.attempts: list[Attempt] = []
        self.payload: ray.ObjectRef | None = None  # a large result, in the object store
        self.inline: bytes | None = None  # a small result, pickled
        self.failure: RemoteFailure | None = None
        self.task: ray.ObjectRef | None = None  # the running attempt's first return
        self.container: Any = None  # the pool slot running it, for @app.cls methods
        self.timer: asyncio.TimerHandle | None = None  # startup, timeout or backoff
        self.interrupt: FailureKind | None = None  # why rayfn is killing the attempt
        self.packed = False  # its attempt shares a task with other calls (a pack)
        self.done: asyncio.Event | None = None  # made only when somebody waits

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.function)

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def expired(self, now: float) -> bool:
        return self.finished_at is not None and now >= expires_at(self.finished_at, self.result_ttl)

    def dispatched(
        self, attempt: int, task: ray.ObjectRef, container: Any = None, packed: bool = False
    ) -> None:
        """Attempt number ``attempt`` was handed to Ray as ``task``."""
        self.attempts.append(Attempt(attempt))
        self.status = CallStatus.PENDING
        self.task = task
        self.container = container
        self.packed = packed
        self.interrupt = None

    def is_open(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` is this call's latest and still on."""
        return (
            len(self.attempts) == attempt
            and self.attempts[-1].outcome is None
            and not self.status.is_terminal
        )

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def info(self) -> CallInfo:
        started = next((a.started_at for a in self.attempts if a.started_at), None)
        error = self.failure.summary if self.failure else None
        if error is None and self.status is CallStatus.FAILED and self.attempts:
            error = self.attempts[-1].error
        return CallInfo(
            call_id=self.call_id,
            app=self.app.split("@", 1)[0],
            function=self.function,
            status=self.status,
            created_at=self.created_at,
            started_at=started,
            finished_at=self.finished_at,
            error=error,
            attempts=tuple(a.info() for a in self.attempts),
        )
