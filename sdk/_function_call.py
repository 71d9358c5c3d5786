"""``FunctionCall``: a handle on one call, by id, usable from any process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, NoReturn

import ray

from rayfn import _connection, _prefetch
from rayfn._aio import Steps, aio_method, in_thread, running_async
from rayfn._checks import check_wait
from rayfn._spawner import accepted_id, spawn_token, spawner
from rayfn.exception import (
    CallLostError,
    ExecutionError,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
    RemoteError,
)
from rayfn.records import (
    FAILURES,
    CallEvent,
    CallGraphNode,
    CallInfo,
    CallStatus,
    DeliveryInfo,
    FailureKind,
    call_event,
)
from rayfn.runtime import sources
from rayfn.runtime.constants import GET_ROUND_TRIP_MARGIN_S, WATCH_EVERY_S
from rayfn.runtime.executor import current_call_id
from rayfn.runtime.ids import CALL_ID_EXAMPLE, is_call_id
from rayfn.runtime.protocol import CallQuery, PollMode, Submission, Submitted
from rayfn.runtime.records import CallOutcome, RemoteFailure


class FunctionCall:
    """A call spawned with ``Function.spawn``; its id works from any process.

    Example:
        >>> call = process_job.spawn("data")
        >>> call_id = call.object_id  # store it, send it to a browser...
        >>> rayfn.FunctionCall.from_id(call_id).get(timeout=0)  # later, anywhere
    """

    def __init__(self, call_id: str | Future[str]) -> None:
        # A Future while the registry has not yet accepted a call spawned here.
        self._accepted = call_id

    @property
    def _call_id(self) -> str:
        """The id, once the registry holds the call (raising what refused it)."""
        accepted = self._accepted
        if isinstance(accepted, str):
            return accepted
        self._accepted = accepted.result()
        return self._accepted

    @classmethod
    def from_id(cls, call_id: str) -> FunctionCall:
        """The call with this id. Checks the id's shape without a cluster round trip.

        Raises:
            InvalidError: ``call_id`` cannot be a call id.
        """
        if not is_call_id(call_id):
            raise InvalidError(
                f"{call_id!r} is not a call id: ids look like {CALL_ID_EXAMPLE!r}, as "
                "returned by spawn(...).object_id."
            )
        return cls(call_id)

    @property
    def object_id(self) -> str:
        """The call id, e.g. ``"fc-0-1-mfrggzdfmztwq2lknnwg23tpoa"``."""
        return self._call_id

    @aio_method
    def get(self, timeout: float | None = None) -> Steps[Any]:
        """The call's result, waiting up to ``timeout`` seconds (None: as long as it
        takes; 0: look once). Can be called any number of times until expiry; from
        async code, ``await call.get.aio(timeout=0)``.

        Raises:
            TimeoutError: the call has not finished yet (the builtin).
            OutputExpiredError: the result is past its function's ``result_ttl``.
            NotFoundError: no call with this id was ever accepted.
            ExecutionError: Ray could not run the call (e.g. its worker died).
            Exception: whatever the function raised, with the remote traceback in
                its notes (``RemoteError`` when its type cannot be rebuilt here).
        """
        timeout = check_wait("timeout", timeout)
        round_trip = None if timeout is None else timeout + GET_ROUND_TRIP_MARGIN_S
        claimed = self._claim()
        if claimed is not None:
            outcome: CallOutcome | None = yield from self._submit_and_get(
                claimed, timeout, round_trip
            )
        else:
            call_id = yield from self._accepted_id()
            outcome = _prefetch.take(call_id)
        if outcome is None:
            call_id = self._call_id
            asked = [call_id, *_prefetch.others(call_id)]
            registry = _connection.registry()
            polled = yield registry.poll(asked, timeout, PollMode.FIRST).within(round_trip)
            outcome = polled.pop(call_id)
            _prefetch.keep(call_id, outcome, polled)
        found = _payload(self._call_id, outcome)
        value = (yield found) if isinstance(found, ray.ObjectRef) else _loaded(found)
        return _settle(outcome, value)

    @aio_method
    def status(self) -> Steps[CallInfo]:
        """The call's status record (beyond Modal): ``.status`` (a ``CallStatus``),
        timestamps, error summary and each attempt.

        Raises:
            NotFoundError: no such call, or its result has expired.
        """
        call_id = yield from self._accepted_id()
        return _described(call_id, (yield _connection.registry().describe(call_id)))

    @aio_method
    def requeue(self) -> Steps[CallInfo]:
        """Run a dead letter (a FAILED or TIMED_OUT call) again under the same id
        (beyond Modal): fresh attempts, with its retries, and the earlier attempts kept
        in ``status().attempts``. Returns its status record (QUEUED).

        Raises:
            NotFoundError: no such call, or its result has expired.
            InvalidError: it is not FAILED or TIMED_OUT (or its arguments are gone).
        """
        call_id = yield from self._accepted_id()
        answer = yield _connection.registry().requeue(call_id)
        if isinstance(answer, str):
            raise InvalidError(f"Call {call_id} cannot be requeued: {answer}.")
        return _described(call_id, answer)

    @aio_method
    def deliveries(self) -> Steps[list[DeliveryInfo]]:
        """The tries at posting this call's end to its webhook, oldest first (beyond
        Modal; see ``rayfn.Webhook``): each with its delivery id, try number, the
        receiver's HTTP status or the error. Empty for a call without a webhook.

        Raises:
            NotFoundError: no such call, or its result has expired.
        """
        call_id = yield from self._accepted_id()
        return _delivered(call_id, (yield _connection.registry().deliveries(call_id)))

    @aio_method
    def redeliver(self) -> Steps[list[DeliveryInfo]]:
        """Post this finished call's end to its webhook again, now (beyond Modal): the
        same delivery id (a receiver that has it drops it), a fresh retry window.
        Returns the tries so far.

        Raises:
            NotFoundError: no such call, or its result has expired.
            InvalidError: it has no webhook, or it has not ended.
        """
        call_id = yield from self._accepted_id()
        answer = yield _connection.registry().redeliver(call_id)
        if isinstance(answer, str):
            raise InvalidError(f"Call {call_id} cannot be delivered again: {answer}.")
        return _delivered(call_id, answer)

    @in_thread
    def watch(self) -> Iterator[CallEvent]:
        """The call's events as they happen (beyond Modal): each new status, new
        progress (``rayfn.set_progress``), and last its end with the terminal record.
        From async code: ``async for event in call.watch.aio()``.

        Example:
            >>> for event in call.watch():
            ...     print(event.kind, event.info.status, event.info.progress)

        Raises:
            NotFoundError: no such call, or its result has expired.
        """
        before = None
        while True:
            now = self.status()
            kind = call_event(before, now)
            if kind is not None:
                yield CallEvent(kind, now)
            if now.status.is_terminal:
                return
            before = now
            time.sleep(WATCH_EVERY_S)

    @aio_method
    def cancel(self) -> Steps[CallInfo]:
        """Cancel the call: a queued call never runs, a running one is stopped (its
        worker process is killed), a finished one is left as it is. ``get()`` then
        raises ``rayfn.exception.CancelledError``. Returns the call's status record.

        Raises:
            NotFoundError: no such call, or its result has expired.
        """
        call_id = yield from self._accepted_id()
        return _described(call_id, (yield _connection.registry().cancel(call_id)))

    def get_call_graph(self) -> list[CallGraphNode]:
        """This call and the calls spawned from inside it, recursively, each with its
        status: ``[root]``, where ``root.children`` are the calls it spawned.

        Raises:
            NotFoundError: no such call, or its result has expired.
        """
        found = _connection.registry().call_graph(self._call_id).result()
        if found is CallStatus.LOST:
            raise CallLostError(self._call_id)
        if not isinstance(found, CallGraphNode):
            raise NotFoundError(f"No call with id {self._call_id} (unknown or expired).")
        return [found]

    class _Gather:
        """The results of several calls, in order, waiting for all of them; raises
        the first failure (in order) like ``get`` would. From async code:
        ``await rayfn.FunctionCall.gather.aio(*calls)``.

        Example:
            >>> a, b = rayfn.FunctionCall.gather(f.spawn(1), f.spawn(2))
        """

        def __call__(self, *calls: FunctionCall) -> list[Any]:
            return fetch_results([c.object_id for c in calls], False)

        async def aio(self, *calls: FunctionCall) -> list[Any]:
            """The same, awaited: fetched in a worker thread, the event loop goes on."""
            return await asyncio.to_thread(self, *calls)

    gather = _Gather()

    def _claim(self) -> Submission | None:
        """This call, taken back from the spawner if it has not been sent yet. Not
        from async code: a cancelled await (``asyncio.wait_for``) would abandon the
        call's acceptance with it, while others may hold the call."""
        if isinstance(self._accepted, Future) and not running_async():
            return spawner().claim(self._accepted)
        return None

    def _accepted_id(self) -> Steps[str]:
        """The id, once the registry holds the call (raising what refused it)."""
        accepted = self._accepted
        if isinstance(accepted, Future):
            accepted = self._accepted = yield accepted
        return accepted

    def _submit_and_get(
        self, claimed: Submission, timeout: float | None, round_trip: float | None
    ) -> Steps[CallOutcome]:
        """Send a claimed call with its get: one round trip for both."""
        accepted = self._accepted
        assert isinstance(accepted, Future)
        registry = _connection.registry()
        token = spawn_token()  # sent again, the call is not spawned twice
        try:
            try:
                submitted: Submitted = yield registry.submit(
                    [claimed], token, wait=True, timeout=timeout
                ).within(round_trip)
            except ray.exceptions.GetTimeoutError:
                # The registry answered too slowly: the call may be in, so learn its id.
                (call_id,) = (yield registry.submit([claimed], token)).answers
                if isinstance(call_id, str):
                    accepted.set_result(call_id)
                    self._accepted = call_id
                raise
            answer = accepted_id(submitted.answers[0])  # raises what refused it
        except BaseException as exc:
            if not accepted.done():
                accepted.set_exception(exc)  # anybody else holding the call learns it too
            raise
        accepted.set_result(answer)
        self._accepted = answer
        assert submitted.outcome is not None
        return submitted.outcome

    def __repr__(self) -> str:
        return f"FunctionCall({self._call_id!r})"

    def __reduce__(self) -> tuple[type[FunctionCall], tuple[str]]:
        return (FunctionCall, (self._call_id,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FunctionCall) and other._call_id == self._call_id

    def __hash__(self) -> int:
        return hash(self._call_id)


def is_local() -> bool:
    """False in a process that runs deployed code (a worker, a container, a web
    replica), True elsewhere, as Modal's ``modal.is_local``."""
    return not sources.in_worker()


def current_function_call_id() -> str | None:
    """The id of the call this code runs for (Modal's ``modal.current_function_call_id``);
    None outside a call.

    Example:
        >>> @app.function()
        ... def work():
        ...     print("running as", rayfn.current_function_call_id())
    """
    return current_call_id()


def list_calls(
    *,
    app: str | None = None,
    function: str | None = None,
    status: CallStatus | None = None,
    limit: int = 50,
    before: str | None = None,
    dead: bool = False,
    since: float | None = None,
    until: float | None = None,
    prefix: str | None = None,
) -> list[CallInfo]:
    """Status records of tracked calls, newest first (beyond Modal). Pass the last id
    of a page as ``before`` for the next page; ``since``/``until`` (Unix times) bound
    when they were created; ``prefix``: ids that start with it.

    Example:
        >>> rayfn.list_calls(app="my-job-queue", status=rayfn.CallStatus.FAILED)
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
        raise InvalidError(f"limit must be a whole number from 1 to 10000, got {limit!r}.")
    if before is not None and not is_call_id(before):
        raise InvalidError(f"before must be a call id, got {before!r}.")
    for name, value in (("since", since), ("until", until)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidError(f"{name} is a Unix time in seconds, got {value!r}.")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > 64):
        raise InvalidError(f"prefix is the start of a call id, got {prefix!r}.")
    query = CallQuery(app, function, status, limit, before, dead, since, until, prefix or None)
    return _connection.registry().list_calls(query).result()


def _delivered(call_id: str, answer: list[DeliveryInfo] | CallStatus | None) -> list[DeliveryInfo]:
    if isinstance(answer, list):
        return answer
    _untracked(call_id, answer)


def _described(call_id: str, info: CallInfo | CallStatus | None) -> CallInfo:
    if isinstance(info, CallInfo):
        return info
    _untracked(call_id, info)


def _untracked(call_id: str, answer: CallStatus | None) -> NoReturn:
    """Raise for a call the registry does not track (any more)."""
    if answer is CallStatus.LOST:
        raise CallLostError(call_id)
    raise NotFoundError(f"No call with id {call_id} (unknown or expired).")


def _payload(call_id: str, outcome: CallOutcome) -> ray.ObjectRef | RemoteFailure | bytes:
    """What a finished call left: a ref to fetch, a failure, or its result pickled
    inline; raise for any other answer."""
    status = outcome.status
    if status is None:
        raise NotFoundError(f"No call with id {call_id}.")
    if status is CallStatus.EXPIRED:
        raise OutputExpiredError(call_id)
    if status is CallStatus.LOST:
        raise CallLostError(call_id)
    if status.is_terminal:
        if outcome.failure is not None:
            return outcome.failure
        if outcome.inline is not None:
            return outcome.inline
        if outcome.payload is not None:
            return outcome.payload
    raise TimeoutError(f"Call {call_id} has not finished yet (it is {status.value}).")


def _loaded(found: RemoteFailure | bytes) -> Any:
    return ray.cloudpickle.loads(found) if isinstance(found, bytes) else found


def _settle(outcome: CallOutcome, value: Any) -> Any:
    """The value of a finished call, or raise what ended it."""
    if outcome.status is not CallStatus.SUCCEEDED:
        raise rebuild_exception(value)
    return value


def fetch_results(call_ids: list[str], return_exceptions: bool) -> list[Any]:
    """Wait for all ``call_ids`` and fetch their values (or exceptions) in one go."""
    polled = _connection.registry().poll(call_ids, None, PollMode.ALL).result()
    return _results(call_ids, [polled[i] for i in call_ids], return_exceptions)


# How long one round trip of remote_gen waits for the next value at the registry.
_STREAM_WAIT_S = 20.0


def stream_values(call_id: str) -> Iterator[Any]:
    """What a generator call yields, as it yields it (``remote_gen``); then raise what
    it raised, if it failed. Closing this early cancels the call."""
    registry = _connection.registry()
    start = 0
    ended = False
    try:
        while True:
            chunk = registry.stream(call_id, start, _STREAM_WAIT_S).result()
            if chunk.items:
                values = ray.get(chunk.items)
                start += len(values)
                yield from values
            elif chunk.gone:
                ended = True
                info = registry.describe(call_id).result()
                if isinstance(info, CallInfo) and info.status.is_terminal:
                    raise OutputExpiredError(call_id)  # not read to its end in time
                raise CallLostError(call_id)
            elif chunk.outcome is not None:
                ended = True
                if chunk.outcome.failure is not None:
                    raise rebuild_exception(chunk.outcome.failure)
                if chunk.outcome.status is not CallStatus.SUCCEEDED:
                    _payload(call_id, chunk.outcome)  # raises what the status says
                return
    finally:
        if not ended:  # the caller stopped reading (or this process is going away)
            registry.cancel(call_id).result()


def stream_results(
    call_ids: list[str], ordered: bool, return_exceptions: bool, window: int
) -> Iterator[Any]:
    """The values (or exceptions) of ``call_ids`` as they finish: in order (each as
    soon as it and those before it have finished) or, unordered, as each finishes.
    One round trip asks about up to ``window`` calls (ordered: from the first not yet
    given; unordered: all that are left)."""
    registry = _connection.registry()
    if not ordered:
        pending = list(call_ids)
        while pending:
            done = registry.poll(pending, None, PollMode.ANY).result()
            finished = [i for i in pending if i in done]
            pending = [i for i in pending if i not in done]
            yield from _results(finished, [done[i] for i in finished], return_exceptions)
        return
    known: dict[str, CallOutcome] = {}
    given = 0
    while given < len(call_ids):
        ahead = [i for i in call_ids[given : given + window] if i not in known]
        # Waits for the first of them (the next to give), with the others done by then.
        known.update(registry.poll(ahead, None, PollMode.FIRST).result())
        ready = given
        while ready < len(call_ids) and call_ids[ready] in known:
            ready += 1
        batch = call_ids[given:ready]
        yield from _results(batch, [known.pop(i) for i in batch], return_exceptions)
        given = ready


def _results(
    call_ids: list[str], outcomes: list[CallOutcome], return_exceptions: bool
) -> list[Any]:
    """The values of finished calls (large ones fetched in one ``ray.get``); the first
    failure raises, or with ``return_exceptions`` takes its value's place."""
    found = [_payload(i, o) for i, o in zip(call_ids, outcomes, strict=True)]
    refs = [f for f in found if isinstance(f, ray.ObjectRef)]
    fetched = iter(ray.get(refs)) if refs else iter(())
    results = []
    for outcome, item in zip(outcomes, found, strict=True):
        value = next(fetched) if isinstance(item, ray.ObjectRef) else _loaded(item)
        try:
            results.append(_settle(outcome, value))
        except Exception as exc:
            if not return_exceptions:
                raise
            results.append(exc)
    return results


def rebuild_exception(failure: RemoteFailure) -> BaseException:
    """What ``get`` raises for a call that ended with ``failure`` (the failure table,
    ``rayfn.records.FAILURES``): the function's own exception, with its remote
    traceback in the notes (``RemoteError`` when it cannot be rebuilt here), or rayfn's
    for the other endings."""
    if failure.kind is FailureKind.CRASHED:
        return ExecutionError(f"The call could not run to its end: {failure.summary}")
    if failure.kind is not FailureKind.RAISED:
        return FAILURES[failure.kind].error(failure.message)
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
