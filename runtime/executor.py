"""The Ray task every call runs as.

It unpickles the user's function once per worker process and version, runs it, and
returns two objects: a small ``AttemptMeta`` the registry awaits, and the result (or
the ``RemoteFailure``) that the caller fetches straight from the object store.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.actor import ActorHandle

from rayfn.runtime.records import AttemptMeta, RemoteFailure

# (app key, function name, version) -> the unpickled user function, per worker process.
_loaded: dict[tuple[str, str, int], Callable[..., Any]] = {}

_current_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rayfn_current_call_id", default=None
)


def current_call_id() -> str | None:
    """The id of the call this code runs for, or None outside a rayfn call."""
    return _current_call_id.get()


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
    registry: ActorHandle,
) -> tuple[AttemptMeta, Any]:
    started_at = time.time()
    # Tell the registry the function starts (RUNNING, and its timeout clock starts);
    # fire and forget: the call does not wait for the answer.
    registry.attempt_started.remote(call_id, attempt, started_at)
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
        failure = RemoteFailure.capture(exc, tb)
        meta = AttemptMeta(False, started_at, time.time(), failure.summary, failure.type_name)
        return meta, failure
    finally:
        _current_call_id.reset(token)
    return AttemptMeta(True, started_at, time.time()), value


# The plain function stays importable as `run_call`, so Ray ships it by reference.
# max_retries=0: rayfn's own retry policy is the one source of truth, never Ray's.
execute_call = ray.remote(num_returns=2, max_retries=0)(run_call)
