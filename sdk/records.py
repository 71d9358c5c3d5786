"""What rayfn tells about calls: the public records (``CallStatus``, ``CallInfo``...)
and the failure table, which says, for each way a call can fail, what every layer
calls it: the call's terminal status, the exception ``get()`` raises, and the job
API's HTTP answer. The registry, the client and the API all read it here.

A leaf of the package, like ``rayfn.exception``: it imports nothing else of rayfn, so
every layer (``rayfn.runtime`` included) may use it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from rayfn.exception import (
    CallLostError,
    CancelledError,
    ConflictError,
    Error,
    ExecutionError,
    ExpiredUnstartedError,
    FunctionTimeoutError,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
    RemoteError,
    SerializationError,
    StartupTimeoutError,
)


class CallStatus(enum.StrEnum):
    """Where a call stands. Terminal states never change again, except to EXPIRED."""

    SCHEDULED = "SCHEDULED"  # spawned with a delay or a time to run at: not queued yet
    QUEUED = "QUEUED"  # in rayfn's queue (e.g. waiting for a max_containers slot)
    PENDING = "PENDING"  # handed to Ray, waiting for resources or a worker
    RUNNING = "RUNNING"  # the function has started
    RETRYING = "RETRYING"  # an attempt failed; waiting out the backoff delay
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"  # its last attempt ran past the function's timeout
    EXPIRED_UNSTARTED = "EXPIRED_UNSTARTED"  # not started before its expires_in: never ran
    EXPIRED = "EXPIRED"  # finished, and its result has aged out
    LOST = "LOST"  # accepted by a registry that died since; nothing is known of it

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        CallStatus.SUCCEEDED,
        CallStatus.FAILED,
        CallStatus.CANCELLED,
        CallStatus.TIMED_OUT,
        CallStatus.EXPIRED_UNSTARTED,
        CallStatus.EXPIRED,
        CallStatus.LOST,
    }
)


class FailureKind(enum.StrEnum):
    """Why an attempt or a call failed."""

    RAISED = "raised"  # the function raised an exception
    CRASHED = "crashed"  # Ray lost the attempt (worker died, node lost...)
    TIMED_OUT = "timed_out"  # it ran past the function's timeout
    NOT_STARTED = "not_started"  # it did not start within startup_timeout
    CANCELLED = "cancelled"
    BAD_RESULT = "bad_result"  # its result could not be pickled, or was too large
    EXPIRED_UNSTARTED = "expired_unstarted"  # not started before its expires_in deadline


@dataclass(frozen=True)
class AttemptInfo:
    """One attempt of a call, as status records show it."""

    number: int  # 1 for the first attempt
    submitted_at: float  # handed to Ray
    started_at: float | None = None  # the function started
    finished_at: float | None = None
    outcome: str | None = None  # "succeeded", or a FailureKind value; None while on
    error: str | None = None
    task_id: str | None = None  # the Ray task that ran it (its logs: rayfn call logs)


@dataclass(frozen=True)
class Progress:
    """What a running call last said of its progress (``rayfn.set_progress``)."""

    value: float | dict[str, Any]  # a fraction done (0 to 1), or a small JSON-able dict
    message: str | None = None
    at: float = 0.0  # when it said so (the worker's clock)


@dataclass(frozen=True)
class CallInfo:
    """The status record of one call."""

    call_id: str
    app: str
    function: str
    status: CallStatus
    created_at: float
    started_at: float | None = None  # its first attempt started
    finished_at: float | None = None
    error: str | None = None  # "ValueError: bad input" for a failed call
    attempts: tuple[AttemptInfo, ...] = ()
    progress: Progress | None = None  # what the call last reported (set_progress)
    priority: int = 0  # higher leaves its function's queue first
    scheduled_for: float | None = None  # spawned with delay= or at=: not started before
    start_by: float | None = None  # spawned with expires_in=: not started after, never


@dataclass(frozen=True)
class DeliveryInfo:
    """One try at delivering a call's end to its webhook (``FunctionCall.deliveries``)."""

    delivery_id: str  # the same for every try of one event: receivers drop repeats
    attempt: int  # 1 for the first try of this delivery id
    at: float  # when it was sent
    status_code: int | None = None  # the receiver's answer; None: no answer
    error: str | None = None  # why it failed: no answer, or not a 2xx
    seconds: float = 0.0  # how long the request took


class CallEventKind(enum.StrEnum):
    """What a call's event tells (``FunctionCall.watch``, ``/v1/calls/{id}/events``)."""

    STATUS = "status"  # a new status
    PROGRESS = "progress"  # new progress, same status
    END = "end"  # a terminal status: the last event


@dataclass(frozen=True)
class CallEvent:
    kind: CallEventKind
    info: CallInfo


def call_event(before: CallInfo | None, now: CallInfo) -> CallEventKind | None:
    """What ``now`` tells that ``before`` (the last record seen, None at first) did
    not: the call's end, a new status, or new progress; None for nothing new."""
    if now.status.is_terminal:
        return None if before is not None and before.status.is_terminal else CallEventKind.END
    if before is None or before.status is not now.status:
        return CallEventKind.STATUS
    return CallEventKind.PROGRESS if now.progress != before.progress else None


@dataclass(frozen=True)
class CallGraphNode:
    """A call and the calls spawned from inside it (``FunctionCall.get_call_graph``)."""

    call_id: str
    app: str
    function_name: str
    status: CallStatus
    children: tuple[CallGraphNode, ...] = ()


# -- the failure table ------------------------------------------------------------------


@dataclass(frozen=True)
class Failing:
    """How one kind of failure is told at each layer."""

    status: CallStatus  # the call's terminal status, once retries are over
    retryable: bool  # whether the function's Retries may run it again
    error: type[Error]  # what get() raises (RAISED: the function's own exception, if it can)
    http_status: int  # the job API's answer to GET /v1/calls/{id}/result
    http_code: str  # the error code in that answer's body


FAILURES: dict[FailureKind, Failing] = {
    FailureKind.RAISED: Failing(CallStatus.FAILED, True, RemoteError, 424, "failed"),
    FailureKind.CRASHED: Failing(CallStatus.FAILED, True, ExecutionError, 424, "failed"),
    FailureKind.TIMED_OUT: Failing(CallStatus.TIMED_OUT, True, FunctionTimeoutError, 424, "failed"),
    FailureKind.NOT_STARTED: Failing(CallStatus.FAILED, False, StartupTimeoutError, 424, "failed"),
    FailureKind.CANCELLED: Failing(CallStatus.CANCELLED, False, CancelledError, 409, "cancelled"),
    FailureKind.BAD_RESULT: Failing(CallStatus.FAILED, False, SerializationError, 424, "failed"),
    FailureKind.EXPIRED_UNSTARTED: Failing(
        CallStatus.EXPIRED_UNSTARTED, False, ExpiredUnstartedError, 409, "expired_unstarted"
    ),
}

# The job API's answer to rayfn's other errors: (HTTP status, error code). The first
# class an error is an instance of wins.
ERROR_HTTP: list[tuple[type[Error], int, str]] = [
    (OutputExpiredError, 410, "expired"),
    (CallLostError, 410, "lost"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (InvalidError, 422, "invalid"),
    (SerializationError, 422, "not_serializable"),
    (Error, 400, "error"),
]


def failure_kind(exc: BaseException) -> FailureKind | None:
    """The kind of failure ``get()`` told by raising ``exc``; None for an exception
    that says nothing of how a call ended (expired, not found, bad input...). Any
    exception that is not rayfn's is the function's own."""
    if not isinstance(exc, Error):
        return FailureKind.RAISED
    for kind, failing in FAILURES.items():
        if type(exc) is failing.error:
            return kind
    return None


def error_http(exc: Error) -> tuple[int, str]:
    """The job API's (HTTP status, error code) for one of rayfn's errors."""
    return next((status, code) for kind, status, code in ERROR_HTTP if isinstance(exc, kind))
