"""The Ray task every call runs as.

It unpickles the user's function once per worker process and version, runs it, and
returns two objects: a small ``AttemptMeta`` the registry awaits (carrying a small
result, or the failure, inline), and a large result, which stays in the object store
for the caller to fetch straight from there.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
import pickle
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.actor import ActorHandle

from rayfn.runtime.constants import (
    DEFAULT_MAX_RESULT_BYTES,
    INLINE_RESULT_BYTES,
    NAMESPACE,
    REGISTRY_ACTOR_NAME,
)
from rayfn.runtime.records import AttemptMeta, FailureKind, RemoteFailure

# (app key, function name, version) -> the unpickled user function, per worker process.
_loaded: dict[tuple[str, str, int], Callable[..., Any]] = {}

_registry_handle: ActorHandle | None = None  # looked up once per worker process

_current_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rayfn_current_call_id", default=None
)


def current_call_id() -> str | None:
    """The id of the call this code runs for, or None outside a rayfn call."""
    return _current_call_id.get()


def _registry() -> ActorHandle:
    global _registry_handle
    if _registry_handle is None:
        _registry_handle = ray.get_actor(REGISTRY_ACTOR_NAME, namespace=NAMESPACE)
    return _registry_handle


def _load(key: tuple[str, str, int], code_box: list[ray.ObjectRef]) -> Callable[..., Any]:
    fn = _loaded.get(key)
    if fn is None:
        # The code travels boxed in a list so that Ray does not fetch it for every call.
        fn = ray.cloudpickle.loads(ray.get(code_box[0]))
        _loaded[key] = fn
    return fn


def run_call(
    code_box: list[ray.ObjectRef],
    key: tuple[str, str, int],
    call_id: str,
    attempt: int,
    args_blob: bytes,
) -> tuple[AttemptMeta, Any]:
    started_at = time.time()
    # Tell the registry the function starts (RUNNING, and its timeout clock starts);
    # fire and forget: the call does not wait for the answer.
    _registry().attempt_started.remote(call_id, attempt, started_at)
    token = _current_call_id.set(call_id)
    try:
        fn = _load(key, code_box)
        args, kwargs = ray.cloudpickle.loads(args_blob)
        if inspect.iscoroutinefunction(fn):
            value = asyncio.run(fn(*args, **kwargs))
        else:
            value = fn(*args, **kwargs)
    except Exception as exc:  # whatever the user's code raises is the call's outcome
        # The traceback starts at the user's code: this frame is rayfn's, not theirs.
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        return _failed(started_at, RemoteFailure.capture(exc, tb))
    finally:
        _current_call_id.reset(token)
    return _succeeded(started_at, key, value)


def _succeeded(started_at: float, key: tuple[str, str, int], value: Any) -> tuple[AttemptMeta, Any]:
    """Pickle the result here, so a result that cannot be pickled, or is too large,
    fails the call with a clear error instead of a dead worker; a small result rides
    inline in the first return, a large one stays in the object store."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        # Out-of-band buffers (numpy arrays...) are measured, not copied.
        blob = ray.cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception as exc:
        return _failed(
            started_at, _result_error(key, f"cannot be pickled: {type(exc).__name__}: {exc}")
        )
    size = len(blob) + sum(b.raw().nbytes for b in buffers)
    limit = _max_result_bytes()
    if size > limit:
        return _failed(
            started_at,
            _result_error(key, f"is {size} bytes, over RAYFN_MAX_RESULT_BYTES ({limit})"),
        )
    finished_at = time.time()
    if size <= INLINE_RESULT_BYTES:
        inline = blob if not buffers else ray.cloudpickle.dumps(value, protocol=5)
        return AttemptMeta(True, started_at, finished_at, inline=inline), None
    return AttemptMeta(True, started_at, finished_at), value


def _failed(started_at: float, failure: RemoteFailure) -> tuple[AttemptMeta, Any]:
    return AttemptMeta(False, started_at, time.time(), failure=failure), None


def _result_error(key: tuple[str, str, int], problem: str) -> RemoteFailure:
    app = key[0].split("@", 1)[0]
    return RemoteFailure(
        "rayfn.exception.SerializationError",
        f"The result of {app}.{key[1]} {problem}.",
        "",
        None,
        FailureKind.BAD_RESULT,
    )


def _max_result_bytes() -> int:
    try:
        return int(os.environ.get("RAYFN_MAX_RESULT_BYTES", DEFAULT_MAX_RESULT_BYTES))
    except ValueError:
        return DEFAULT_MAX_RESULT_BYTES


# The plain function stays importable as `run_call`, so Ray ships it by reference.
# max_retries=0: rayfn's own retry policy is the one source of truth, never Ray's.
execute_call = ray.remote(num_returns=2, max_retries=0)(run_call)
