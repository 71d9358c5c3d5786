"""``FunctionCall``: a handle on one call, by id, usable from any process."""

from __future__ import annotations

import math
from typing import Any

import ray

from rayfn import _connection
from rayfn.exception import (
    ExecutionError,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
    RemoteError,
)
from rayfn.runtime.constants import GET_ROUND_TRIP_MARGIN_S
from rayfn.runtime.ids import is_call_id
from rayfn.runtime.records import CallInfo, CallOutcome, CallStatus, RemoteFailure


class FunctionCall:
    """A call spawned with ``Function.spawn``; its id works from any process.

    Example:
        >>> call = process_job.spawn("data")
        >>> call_id = call.object_id  # store it, send it to a browser...
        >>> rayfn.FunctionCall.from_id(call_id).get(timeout=0)  # later, anywhere
    """

    def __init__(self, call_id: str) -> None:
        self._call_id = call_id

    @classmethod
    def from_id(cls, call_id: str) -> FunctionCall:
        """The call with this id. Checks the id's shape without a cluster round trip.

        Raises:
            InvalidError: ``call_id`` cannot be a call id.
        """
        if not is_call_id(call_id):
            raise InvalidError(
                f"{call_id!r} is not a call id: ids look like 'fc-' followed by 26 "
                "letters and digits, as returned by spawn(...).object_id."
            )
        return cls(call_id)

    @property
    def object_id(self) -> str:
        """The call id, e.g. ``"fc-mfrggzdfmztwq2lknnwg23tpoa"``."""
        return self._call_id

    def get(self, timeout: float | None = None) -> Any:
        """The call's result, waiting up to ``timeout`` seconds (None: as long as it
        takes; 0: look once). Can be called any number of times until expiry.

        Raises:
            TimeoutError: the call has not finished yet (the builtin).
            OutputExpiredError: the result is past its function's ``result_ttl``.
            NotFoundError: no call with this id was ever accepted.
            ExecutionError: Ray could not run the call (e.g. its worker died).
            Exception: whatever the function raised, with the remote traceback in
                its notes (``RemoteError`` when its type cannot be rebuilt here).
        """
        _check_timeout(timeout)
        client_timeout = None if timeout is None else timeout + GET_ROUND_TRIP_MARGIN_S
        outcome = ray.get(
            _connection.registry().get.remote(self._call_id, timeout), timeout=client_timeout
        )
        return result_of(self._call_id, outcome)

    def info(self) -> CallInfo:
        """The call's status record: function, status, timestamps, error summary.

        Raises:
            NotFoundError: no such call, or its result has expired.
        """
        info = ray.get(_connection.registry().describe.remote(self._call_id))
        if info is None:
            raise NotFoundError(f"No call with id {self._call_id} (unknown or expired).")
        return info

    def __repr__(self) -> str:
        return f"FunctionCall({self._call_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FunctionCall) and other._call_id == self._call_id

    def __hash__(self) -> int:
        return hash(self._call_id)


def result_of(call_id: str, outcome: CallOutcome) -> Any:
    """Turn the registry's answer into the value, or the exception ``get`` raises."""
    status = outcome.status
    if status is None:
        raise NotFoundError(f"No call with id {call_id}.")
    if status is CallStatus.EXPIRED:
        raise OutputExpiredError(call_id)
    if status is CallStatus.SUCCEEDED:
        return ray.get(outcome.payload)
    if status is CallStatus.FAILED:
        failure = outcome.failure or ray.get(outcome.payload)
        raise rebuild_exception(failure)
    raise TimeoutError(f"Call {call_id} has not finished yet (it is {status.value}).")


def rebuild_exception(failure: RemoteFailure) -> BaseException:
    """The exception the remote function raised, with its traceback in the notes."""
    if failure.system:
        return ExecutionError(f"The call could not run to its end: {failure.summary}")
    exc: BaseException | None = None
    if failure.pickled is not None:
        try:
            exc = ray.cloudpickle.loads(failure.pickled)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        return RemoteError(failure.type_name, failure.message, failure.traceback)
    exc.add_note(f"\nRemote traceback:\n{failure.traceback}")
    exc.remote_traceback = failure.traceback  # type: ignore[attr-defined]
    return exc


def _check_timeout(timeout: float | None) -> None:
    if timeout is None:
        return
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout < 0
    ):
        raise InvalidError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}.")
