"""The Ray task every call runs as.

It unpickles the user's function once per worker process and version, runs it, and
returns two objects: a small ``AttemptMeta`` the registry awaits (carrying a small
result, or the failure, inline), and a large result, which stays in the object store
for the caller to fetch straight from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import ray

from rayfn.records import FailureKind
from rayfn.runtime import clients, image_files, output, sources, volumes
from rayfn.runtime.code import get_code, get_secret
from rayfn.runtime.constants import (
    INLINE_RESULT_BYTES,
    PACK_BUDGET_S,
    REPORT_RUNNING_AFTER_S,
)
from rayfn.runtime.protocol import Finished, TaskHeader
from rayfn.runtime.records import AttemptMeta, RemoteFailure, StreamEnd

# code key (app, version, function) -> the unpickled user function, per worker process,
# and the user's modules it was imported with (runtime/sources.py), if it was.
_loaded: dict[str, Callable[..., Any]] = {}
_modules: dict[str, dict[str, ModuleType]] = {}


_current_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rayfn_current_call_id", default=None
)
_current_attempt: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "rayfn_current_attempt", default=None
)


def current_attempt() -> tuple[str, int] | None:
    """The call and attempt number this code runs for; None outside a call."""
    return _current_attempt.get()


def current_call_id() -> str | None:
    """The id of the call this code runs for, or None outside a rayfn call."""
    return _current_call_id.get()


class StartReporter:
    """Tells the registry that a call has started (RUNNING; its timeout clock starts
    from the real start time) once it has run for ``REPORT_RUNNING_AFTER_S``. Calls
    that finish sooner never send the message: it would cost the registry an actor
    call per call for a state that lasted less than a blink. One thread per worker
    process, which runs one call at a time; it ticks while calls run and sleeps while
    none does, so a stream of short calls costs it no wake-up per call.

    In a pack (``run_pack``), the report also carries the pack's calls that finished
    before this one: once a call runs long enough to be timed out or cancelled, and
    so to take its pack down, nothing before it is lost.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._current: tuple[str, int, float, Finished] | None = None
        self._parked = False
        threading.Thread(target=self._run, name="rayfn-start-reporter", daemon=True).start()

    def running(
        self, call_id: str, attempt: int, started_at: float, finished: Finished = ()
    ) -> None:
        with self._lock:
            self._current = (call_id, attempt, started_at, finished)
            if self._parked:
                self._lock.notify()

    def done(self) -> None:
        with self._lock:
            self._current = None

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._current is None:
                    self._parked = True
                    self._lock.wait()
                self._parked = False
                seen = self._current
            time.sleep(REPORT_RUNNING_AFTER_S)
            with self._lock:
                if self._current is not seen:
                    continue  # it finished (and maybe another started) meanwhile
                self._current = None  # report each call once
            call_id, attempt, started_at, finished = seen
            # A registry that is restarting misses the report; the call still runs.
            with contextlib.suppress(Exception):
                registry = clients.existing_registry()
                if registry is not None:
                    registry.attempt_started(call_id, attempt, started_at, finished)


_reporter: StartReporter | None = None


def _start_reporter() -> StartReporter:
    global _reporter
    if _reporter is None:
        _reporter = StartReporter()
    return _reporter


def load_code(code_key: str, label: str) -> Any:
    """The user's code a key names, loaded once per worker process; its modules are
    made the ones their names import, for the call about to run."""
    fn = _loaded.get(code_key)
    if fn is None:
        blob = get_code(code_key)
        if blob is None:
            raise RuntimeError(
                f"The code of {label} is gone: its app was stopped (or deployed twice "
                "more) before this call started."
            )
        fn, modules = loads_code(blob)
        _loaded[code_key] = fn
        if modules:
            _modules[code_key] = modules
    own = _modules.get(code_key)
    if own:
        sources.activate(own)
    return fn


def loads_code(blob: bytes) -> tuple[Any, dict[str, ModuleType]]:
    """Deployed code as the deploying client sent it: pickled by value, or a
    ``ModuleSource`` to import here."""
    sources.enter_worker()
    image_files.place()  # before the module is imported: it may read them at its top
    code = ray.cloudpickle.loads(blob)
    if isinstance(code, sources.ModuleSource):
        return sources.load(code)
    return code, {}


# secret name -> (its values, when read): re-read after a while, so an update lands.
_secrets: dict[str, tuple[dict[str, str], float]] = {}
_SECRET_FRESH_S = 10.0


def secret_env(names: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    now = time.monotonic()
    for name in names:
        cached = _secrets.get(name)
        if cached is None or now - cached[1] > _SECRET_FRESH_S:
            values = get_secret(name)
            if values is None:
                raise RuntimeError(
                    f"Secret {name!r} does not exist; create it with "
                    f"`rayfn secret create {name} KEY=VALUE ...`."
                )
            cached = _secrets[name] = (values, now)
        env.update(cached[0])
    return env


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` for one call, then put back what was there."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_call(
    header: str,
    args_blob: bytes,
    resolve: Callable[[], Callable[..., Any]] | None = None,
    report_start: bool = True,
) -> tuple[AttemptMeta, Any]:
    """Run one attempt: the function the header's code key names, or ``resolve()``
    (a container's bound method). ``report_start`` is off where several calls share
    a process at once (the reporter follows one call at a time)."""
    started_at = time.time()
    task = TaskHeader.parse(header)
    too_late = _past_start_by(task, started_at)
    if too_late is not None:
        return too_late, None
    try:
        with _attempt(task, started_at, report_start):
            fn = resolve() if resolve is not None else load_code(task.code_key, task.label)
            # The function's own start, after its code was loaded (once per worker):
            # what the registry's measure of how long calls run (for packing) sees.
            return _run(fn, task, args_blob, time.time())
    except Exception as exc:  # rayfn's own trouble before the code ran (a missing secret)
        return _failed(started_at, RemoteFailure.capture(exc, None))


def stream_call(
    header: str,
    args_blob: bytes,
    resolve: Callable[[], Callable[..., Any]] | None = None,
    report_start: bool = True,
) -> Iterator[Any]:
    """Run one attempt of a generator function: yield each value it yields (Ray
    makes each an object the registry hands on as it comes), then a ``StreamEnd``
    saying how the attempt went."""
    started_at = time.time()
    task = TaskHeader.parse(header)
    too_late = _past_start_by(task, started_at)
    if too_late is not None:
        yield StreamEnd(too_late)
        return
    try:
        with _attempt(task, started_at, report_start):
            fn = resolve() if resolve is not None else load_code(task.code_key, task.label)
            began = time.time()
            try:
                args, kwargs = ray.cloudpickle.loads(args_blob)
                # A loop, not `yield from`: Ray may send() into its generator, which
                # must not reach the user's (a `yield from` over a list cannot take it).
                for value in _values(fn(*args, **kwargs)):  # noqa: UP028
                    yield value
            except Exception as exc:  # the user's code raised: the call's outcome
                tb = exc.__traceback__.tb_next if exc.__traceback__ else None
                meta, _ = _failed(began, RemoteFailure.capture(exc, tb))
            else:
                meta = AttemptMeta(True, began, time.time())
    except Exception as exc:  # rayfn's own trouble before the code ran (a missing secret)
        meta, _ = _failed(started_at, RemoteFailure.capture(exc, None))
    yield StreamEnd(meta)


def _past_start_by(task: TaskHeader, now: float) -> AttemptMeta | None:
    """How a call went whose ``expires_in`` deadline passed before a worker got to
    it: it does not start. None for a call that may start."""
    if task.start_by is None or now < task.start_by:
        return None
    failure = RemoteFailure.of_kind(
        FailureKind.EXPIRED_UNSTARTED,
        f"{task.label} was not started before its expires_in deadline: it did not run.",
    )
    return _failed(now, failure)[0]


def _values(produced: Any) -> Iterator[Any]:
    """What a generator (or an async generator, run on a loop of its own) yields."""
    if not inspect.isasyncgen(produced):
        for value in produced:  # noqa: UP028  (as above)
            yield value
        return
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(produced.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(produced.aclose())
        loop.close()


@contextlib.contextmanager
def _attempt(task: TaskHeader, started_at: float, report_start: bool) -> Iterator[None]:
    """What surrounds an attempt: its start reported, its output tagged, its call id
    current, its volumes mounted and its secrets in the environment."""
    if report_start:
        _start_reporter().running(task.call_id, task.attempt, started_at)
    tagged = output.begin(output.call_tag(task.code_key, task.call_id))
    token = _current_call_id.set(task.call_id)
    attempt_token = _current_attempt.set((task.call_id, task.attempt))
    try:
        if task.volumes:
            volumes.mount(task.volumes)
        with environment(secret_env(task.secrets) if task.secrets else {}):
            yield
    finally:
        _current_call_id.reset(token)
        _current_attempt.reset(attempt_token)
        output.end(tagged)
        if report_start:
            _start_reporter().done()


def _run(
    fn: Callable[..., Any], task: TaskHeader, args_blob: bytes, started_at: float
) -> tuple[AttemptMeta, Any]:
    try:
        args, kwargs = ray.cloudpickle.loads(args_blob)
        if inspect.iscoroutinefunction(fn):
            value = asyncio.run(fn(*args, **kwargs))
        else:
            value = fn(*args, **kwargs)
    except Exception as exc:  # whatever the user's code raises is the call's outcome
        # The traceback starts at the user's code: this frame is rayfn's, not theirs.
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        return _failed(started_at, RemoteFailure.capture(exc, tb))
    return _succeeded(started_at, task, value)


def _succeeded(
    started_at: float, task: TaskHeader, value: Any, inline_any: bool = False
) -> tuple[AttemptMeta, Any]:
    """Pickle the result here, so a result that cannot be pickled, or is too large,
    fails the call with a clear error instead of a dead worker; a small result rides
    inline in the first return, a large one stays in the object store (``inline_any``:
    inline too, for a batch's calls, which share one task's returns)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        # Out-of-band buffers (numpy arrays...) are measured, not copied.
        blob: bytes = ray.cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception as exc:
        return _failed(
            started_at,
            _result_error(task.label, f"cannot be pickled: {type(exc).__name__}: {exc}"),
        )
    size = len(blob) + sum(b.raw().nbytes for b in buffers)
    limit = task.max_result_bytes
    if size > limit:
        return _failed(
            started_at,
            _result_error(task.label, f"is {size} bytes, over RAYFN_MAX_RESULT_BYTES ({limit})"),
        )
    finished_at = time.time()
    if size <= INLINE_RESULT_BYTES or inline_any:
        inline: bytes = blob if not buffers else ray.cloudpickle.dumps(value, protocol=5)
        return AttemptMeta(True, started_at, finished_at, inline=inline), None
    return AttemptMeta(True, started_at, finished_at), value


def _failed(started_at: float, failure: RemoteFailure) -> tuple[AttemptMeta, Any]:
    return AttemptMeta(False, started_at, time.time(), failure=failure), None


def _result_error(label: str, problem: str) -> RemoteFailure:
    return RemoteFailure(
        "rayfn.exception.SerializationError",
        f"The result of {label} {problem}.",
        "",
        None,
        FailureKind.BAD_RESULT,
    )


def run_batch(
    headers: list[str],
    blobs: list[bytes],
    resolve: Callable[[], Callable[..., Any]] | None = None,
) -> tuple[list[AttemptMeta], None]:
    """Run a ``@batched`` function once for several calls: each parameter gets the
    list of the calls' values, and the function returns one result per call, in
    order. If it raises, every call of the batch fails with that."""
    tasks = [TaskHeader.parse(header) for header in headers]
    started_at = time.time()
    # Calls past their expires_in deadline do not go in: they never run.
    outcomes: list[AttemptMeta | None] = [_past_start_by(t, started_at) for t in tasks]
    ready = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if ready:
        metas = _run_batch([tasks[i] for i in ready], [blobs[i] for i in ready], resolve)
        for i, meta in zip(ready, metas, strict=True):
            outcomes[i] = meta
    return [outcome for outcome in outcomes if outcome is not None], None


def _run_batch(
    tasks: list[TaskHeader],
    blobs: list[bytes],
    resolve: Callable[[], Callable[..., Any]] | None,
) -> list[AttemptMeta]:
    first = tasks[0]
    started_at = time.time()
    try:
        with _attempt(first, started_at, report_start=resolve is None):
            fn = resolve() if resolve is not None else load_code(first.code_key, first.label)
            began = time.time()
            try:
                values = _batch_values(fn, [ray.cloudpickle.loads(blob) for blob in blobs])
            except Exception as exc:  # the user's code raised: every call's outcome
                tb = exc.__traceback__.tb_next if exc.__traceback__ else None
                failed, _ = _failed(began, RemoteFailure.capture(exc, tb))
                return [failed] * len(tasks)
            return [
                _succeeded(began, task, value, inline_any=True)[0]
                for task, value in zip(tasks, values, strict=True)
            ]
    except Exception as exc:  # rayfn's own trouble before the code ran (a missing secret)
        failed, _ = _failed(started_at, RemoteFailure.capture(exc, None))
        return [failed] * len(tasks)


def _batch_values(fn: Callable[..., Any], calls: list[tuple[Any, Any]]) -> list[Any]:
    """Call ``fn`` once with each parameter's values as a list; its results, one per
    call.

    Raises:
        TypeError: a call's arguments do not fit the parameters, or the function did
            not return one result per call.
    """
    signature = inspect.signature(fn)
    columns: dict[str, list[Any]] = {name: [] for name in signature.parameters}
    for args, kwargs in calls:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            columns[name].append(value)
    produced = fn(**columns)
    if inspect.iscoroutine(produced):
        produced = asyncio.run(produced)
    values = list(produced)
    if len(values) != len(calls):
        raise TypeError(
            f"A @batched function must return one result per input: got {len(values)} "
            f"results for {len(calls)} inputs."
        )
    return values


def run_pack(headers: list[str], blobs: list[bytes]) -> tuple[list[AttemptMeta], Any]:
    """Run several short calls of one function in turn, in one task: how each went,
    in order, and the large result of the last one, if it had one. It stops early
    after a large result (a task has one slot for it) or once it has run for
    ``PACK_BUDGET_S``; calls it did not start have no entry, and the registry queues
    them again."""
    reporter = _start_reporter()
    metas: list[AttemptMeta] = []
    finished: list[tuple[str, int, AttemptMeta]] = []
    deadline = time.monotonic() + PACK_BUDGET_S
    try:
        for header, blob in zip(headers, blobs, strict=True):
            task = TaskHeader.parse(header)
            too_late = _past_start_by(task, time.time())
            if too_late is not None:  # it does not run: on to the next
                metas.append(too_late)
                finished.append((task.call_id, task.attempt, too_late))
                continue
            reporter.running(task.call_id, task.attempt, time.time(), tuple(finished))
            meta, payload = run_call(header, blob, report_start=False)
            metas.append(meta)
            finished.append((task.call_id, task.attempt, meta))
            if payload is not None or time.monotonic() > deadline:
                return metas, payload
        return metas, None
    finally:
        reporter.done()


# The plain functions stay importable as `run_call` and `run_pack`, so Ray ships them
# by reference. max_retries=0: rayfn's own retry policy is the one source of truth.
execute_call = ray.remote(num_returns=2, max_retries=0)(run_call)
execute_pack = ray.remote(num_returns=2, max_retries=0)(run_pack)
execute_stream = ray.remote(num_returns="streaming", max_retries=0)(stream_call)
execute_batch = ray.remote(num_returns=2, max_retries=0)(run_batch)
