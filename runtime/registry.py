"""The call registry: the detached actor that owns every call.

It submits each call's Ray task itself, so it owns the result ``ObjectRef`` and the
result outlives the process that called ``.spawn()`` (Ray's ownership rule). It
answers ``get`` by waiting inside the actor and handing back the result's *ref*: the
caller fetches the value from the object store, never through this actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import ray
from ray.actor import ActorHandle

from rayfn.runtime.constants import DEFAULT_MAX_TOMBSTONES, EXPIRY_TICK_S
from rayfn.runtime.executor import execute_call
from rayfn.runtime.expiry import ExpiryQueue, Tombstones, expires_at
from rayfn.runtime.ids import new_call_id
from rayfn.runtime.records import (
    AttemptMeta,
    CallInfo,
    CallOutcome,
    CallStatus,
    FunctionOptions,
    NotDeployed,
    RemoteFailure,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedFunction:
    """A deployed function as the registry dispatches it."""

    key: tuple[str, str, int]  # (app, function, version): the executor's cache key
    code_box: list[ray.ObjectRef]  # the pickled code, put (and owned) by this actor
    options: FunctionOptions
    task_options: dict[str, Any]  # Ray's .options() for the call's task
    task_name: str  # "app.function", as the Ray dashboard shows it


class _Call:
    """The registry's mutable state of one call. Compact: one per tracked call."""

    __slots__ = (
        "app",
        "call_id",
        "created_at",
        "done",
        "failure",
        "finished_at",
        "function",
        "payload",
        "result_ttl",
        "started_at",
        "status",
    )

    def __init__(self, call_id: str, app: str, function: str, result_ttl: float) -> None:
        self.call_id = call_id
        self.app = app
        self.function = function
        self.result_ttl = result_ttl
        self.status = CallStatus.QUEUED
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.payload: ray.ObjectRef | None = None
        self.failure: RemoteFailure | None = None
        self.done: asyncio.Event | None = None  # made only when somebody waits

    def expired(self, now: float) -> bool:
        return self.finished_at is not None and now >= expires_at(self.finished_at, self.result_ttl)

    def info(self, error: str | None = None) -> CallInfo:
        return CallInfo(
            call_id=self.call_id,
            app=self.app,
            function=self.function,
            status=self.status,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=error if error is not None else (self.failure and self.failure.summary),
        )


class CallRegistry:
    """Owns calls: accepts them, runs them as Ray tasks, keeps results until expiry."""

    def __init__(self, max_tombstones: int = DEFAULT_MAX_TOMBSTONES) -> None:
        self._calls: dict[str, _Call] = {}
        self._functions: dict[tuple[str, str], LoadedFunction] = {}
        self._expiry = ExpiryQueue()
        self._tombstones = Tombstones(max_tombstones)
        self._errors: dict[str, str] = {}  # call id -> error summary of a failed call
        self._background: set[asyncio.Task[None]] = set()
        self._start(self._expire_forever())

    # -- public methods (actor calls) --------------------------------------------------

    async def spawn(self, app: str, function: str, args_blob: bytes) -> str | NotDeployed:
        """Accept a call of ``app.function`` with pickled ``(args, kwargs)``; return
        its id at once. The call runs as a Ray task submitted by this actor."""
        loaded = await self._function(app, function)
        if isinstance(loaded, NotDeployed):
            return loaded
        call = _Call(new_call_id(), app, function, loaded.options.result_ttl)
        self._calls[call.call_id] = call
        self._dispatch(call, loaded, args_blob)
        return call.call_id

    async def get(self, call_id: str, timeout: float | None) -> CallOutcome:
        """Wait up to ``timeout`` seconds (None: forever, 0: not at all) for a call to
        finish, then say where it stands; a finished call comes with its result ref."""
        call = self._calls.get(call_id)
        if call is None:
            return CallOutcome(CallStatus.EXPIRED if call_id in self._tombstones else None)
        if not call.status.is_terminal and timeout != 0:
            if call.done is None:
                call.done = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.done.wait(), timeout)
        if call.expired(time.time()):
            self._expire(call_id)
            return CallOutcome(CallStatus.EXPIRED)
        return CallOutcome(call.status, call.payload, call.failure, self._info(call))

    async def describe(self, call_id: str) -> CallInfo | None:
        """The status record of a call, or None for an id never accepted."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        if call.expired(time.time()):
            self._expire(call_id)
            return None
        return self._info(call)

    async def forget_app(self, app: str) -> None:
        """Drop cached code of ``app`` (it was redeployed or stopped)."""
        for key in [k for k in self._functions if k[0] == app]:
            del self._functions[key]

    async def stats(self) -> dict[str, int]:
        return {
            "tracked_calls": len(self._calls),
            "expiry_queue": len(self._expiry),
            "tombstones": len(self._tombstones),
        }

    # -- machinery ---------------------------------------------------------------------

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _function(self, app: str, function: str) -> LoadedFunction | NotDeployed:
        loaded = self._functions.get((app, function))
        if loaded is not None:
            return loaded
        found = await _control().get_function.remote(app, function)
        if isinstance(found, NotDeployed):
            return found
        version, spec, runtime_env = found
        task_options = spec.options.ray_task_options()
        if runtime_env is not None:
            task_options["runtime_env"] = runtime_env
        loaded = LoadedFunction(
            key=(app, function, version),
            code_box=[ray.put(spec.code)],
            options=spec.options,
            task_options=task_options,
            task_name=f"{app.split('@', 1)[0]}.{function}",
        )
        self._functions[(app, function)] = loaded
        return loaded

    def _dispatch(self, call: _Call, loaded: LoadedFunction, args_blob: bytes) -> None:
        meta_ref, payload_ref = execute_call.options(
            name=loaded.task_name, **loaded.task_options
        ).remote(loaded.code_box, loaded.key, call.call_id, args_blob)
        call.status = CallStatus.RUNNING
        self._start(self._watch(call, meta_ref, payload_ref))

    async def _watch(
        self, call: _Call, meta_ref: ray.ObjectRef, payload_ref: ray.ObjectRef
    ) -> None:
        try:
            meta: AttemptMeta = await meta_ref
        except ray.exceptions.RayError as exc:
            logger.warning("call %s failed in Ray: %s", call.call_id, exc)
            call.failure = RemoteFailure.from_ray_error(exc)
            self._finish(call, CallStatus.FAILED, time.time())
            return
        call.started_at = meta.started_at
        call.payload = payload_ref
        if meta.ok:
            self._finish(call, CallStatus.SUCCEEDED, meta.finished_at)
        else:
            self._errors[call.call_id] = meta.error or "error"
            self._finish(call, CallStatus.FAILED, meta.finished_at)

    def _finish(self, call: _Call, status: CallStatus, finished_at: float) -> None:
        call.status = status
        call.finished_at = finished_at
        self._expiry.push(call.call_id, expires_at(finished_at, call.result_ttl))
        if call.done is not None:
            call.done.set()

    def _info(self, call: _Call) -> CallInfo:
        return call.info(self._errors.get(call.call_id))

    def _expire(self, call_id: str) -> None:
        if self._calls.pop(call_id, None) is not None:
            self._errors.pop(call_id, None)
            self._tombstones.add(call_id)

    def expire_due_calls(self, now: float) -> int:
        """Drop the results whose deadline has passed; returns how many."""
        count = 0
        for call_id in self._expiry.pop_due(now):
            self._expire(call_id)
            count += 1
        return count

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_TICK_S)
            try:
                self.expire_due_calls(time.time())
            except Exception:  # never let one bad entry stop expiry for good
                logger.exception("expiry pass failed")


def _control() -> ActorHandle:
    # Imported here: the handles module imports this one to wrap it as an actor.
    from rayfn.runtime.handles import control_actor

    return control_actor()
