"""Typed clients of rayfn's actors: the one way any process talks to them.

Each actor has one client class here, one method per operation, with typed arguments
and answers (the request and answer records are in ``runtime/protocol.py``). A method
sends at once and returns a ``Reply``: ``.result()`` waits for the answer, ``await``
does the same from async code, and both wait out a restart of the actor the same way
(one retry policy, ``_after_failure``). The actors' method names appear in this file
only::

    registry = clients.registry()
    (call_id,) = registry.submit(submissions, token).result().answers
    outcome = (await registry.poll([call_id], 5.0, PollMode.FIRST))[call_id]
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import ray
from ray.actor import ActorHandle

from rayfn.exception import ClusterError
from rayfn.runtime.constants import (
    CONTROL_RESTART_WAIT_S,
    NAMESPACE,
    REGISTRY_ACTOR_NAME,
    RESTART_RETRY_PAUSE_S,
)

if TYPE_CHECKING:
    from rayfn.records import CallGraphNode, CallInfo, CallStatus, DeliveryInfo, Progress
    from rayfn.runtime.control import ControlActor
    from rayfn.runtime.protocol import (
        CallQuery,
        Finished,
        LoadedVersion,
        Polled,
        PollMode,
        StreamChunk,
        Submission,
        Submitted,
    )
    from rayfn.runtime.records import AppInfo, AppSpec, FunctionInfo, ImageSpec, NotDeployed
    from rayfn.runtime.registry import CallRegistry
    from rayfn.runtime.stores import DictStore, QueueStore
    from rayfn.runtime.volumes import Entry

T = TypeVar("T")
Store = TypeVar("Store", "DictStore", "QueueStore")
Client = TypeVar("Client", "RegistryClient", "ControlClient")

# What Ray raises for a call to an actor that is restarting: ``ActorUnavailableError``
# while it is down, ``ActorDiedError`` for a call the dying actor had taken.
_RESTARTING = (ray.exceptions.ActorUnavailableError, ray.exceptions.ActorDiedError)


class Reply(Generic[T]):
    """One operation, sent to an actor when the ``Reply`` is made.

    ``result()`` blocks for the answer, ``await reply`` does not; either way a restart
    of the actor is waited out (up to ``CONTROL_RESTART_WAIT_S`` from the first failure)
    and the operation sent again. Only for operations that are safe to send twice, or
    whose first try died with the actor's state (a submit that the dead registry took
    is gone with it, and its token makes a second try harmless anyway).
    ``unsure``: what to raise instead of sending again when the actor may have applied
    the first try and a second would not be harmless (a store's pop). ``died``: called
    when the actor is dead for good (``ActorDiedError``), before the operation is sent
    again (a store finds its actor again, or raises that it was deleted).
    """

    __slots__ = ("_deadline", "_died", "_ref", "_send", "_timeout", "_unsure")

    def __init__(
        self,
        send: Callable[[], ray.ObjectRef[T]],
        unsure: Callable[[], Exception] | None = None,
        died: Callable[[], None] | None = None,
    ) -> None:
        self._send = send
        self._unsure = unsure
        self._died = died
        self._deadline: float | None = None
        self._timeout: float | None = None
        self._ref = send()

    def within(self, timeout: float | None) -> Reply[T]:
        """Wait at most ``timeout`` seconds for each try (None: as long as it takes)."""
        self._timeout = timeout
        return self

    def result(self) -> T:
        """The answer.

        Raises:
            ray.exceptions.GetTimeoutError: no answer within the ``within`` timeout.
        """
        while True:
            try:
                return ray.get(self._ref, timeout=self._timeout)
            except _RESTARTING as exc:
                self._after_failure(exc)
                time.sleep(RESTART_RETRY_PAUSE_S)
                self._ref = self._send()

    def __await__(self) -> Generator[Any, None, T]:
        return self._result_async().__await__()

    async def _result_async(self) -> T:
        while True:
            try:
                if self._timeout is None:
                    return await self._ref
                try:
                    return await asyncio.wait_for(self._ref, self._timeout)
                except TimeoutError:
                    raise ray.exceptions.GetTimeoutError(
                        f"no answer within {self._timeout} s"
                    ) from None
            except _RESTARTING as exc:
                self._after_failure(exc)
                await asyncio.sleep(RESTART_RETRY_PAUSE_S)
                self._ref = self._send()

    def _after_failure(self, exc: Exception) -> None:
        """Decide whether to send again after ``exc``: raise if not."""
        if self._unsure is not None and isinstance(exc, ray.exceptions.ActorUnavailableError):
            # Ray cannot say whether the call ran: sending it twice may not be harmless.
            raise self._unsure() from None
        if self._died is not None and isinstance(exc, ray.exceptions.ActorDiedError):
            # Whatever the call did died with that actor's memory: sending it again
            # (to the actor now under its name) duplicates nothing.
            self._died()
            return
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + CONTROL_RESTART_WAIT_S
        elif now > self._deadline:
            raise ClusterError(
                f"A rayfn actor has not answered for {CONTROL_RESTART_WAIT_S:.0f} s: it is "
                f"restarting, or its node cannot be reached ({type(exc).__name__})."
            ) from exc


class RegistryClient:
    """The call registry (``runtime/registry.py``): accepting calls and answering
    about them."""

    def __init__(self, handle: ActorHandle[CallRegistry]) -> None:
        self.handle = handle

    def submit(
        self,
        submissions: list[Submission],
        token: str | None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Reply[Submitted]:
        """Accept calls, in order; answer once they are journaled. ``token`` makes it
        safe to send again (the same token gets the same ids). With ``wait``, also wait
        up to ``timeout`` for the first call to end and answer its outcome (one round
        trip for ``f.remote(x)``)."""
        return Reply(lambda: self.handle.submit.remote(submissions, token, wait, timeout))

    def poll(self, call_ids: list[str], timeout: float | None, mode: PollMode) -> Reply[Polled]:
        """Where calls stand, waiting up to ``timeout`` (None: as long as it takes, 0:
        not at all) as ``mode`` says; see ``PollMode``."""
        return Reply(lambda: self.handle.poll.remote(call_ids, timeout, mode))

    def stream(self, call_id: str, start: int, timeout: float) -> Reply[StreamChunk]:
        """A generator call's values from number ``start`` on, waiting up to
        ``timeout`` for one (or its end)."""
        return Reply(lambda: self.handle.stream.remote(call_id, start, timeout))

    def describe(self, call_id: str) -> Reply[CallInfo | CallStatus | None]:
        """The call's status record; EXPIRED or LOST for one no longer tracked, None
        for an id never accepted."""
        return Reply(lambda: self.handle.describe.remote(call_id))

    def requeue(self, call_id: str) -> Reply[CallInfo | CallStatus | str | None]:
        """Run a dead letter again; its record afterwards, or why not (a sentence)."""
        return Reply(lambda: self.handle.requeue.remote(call_id))

    def deliveries(self, call_id: str) -> Reply[list[DeliveryInfo] | CallStatus | None]:
        return Reply(lambda: self.handle.deliveries.remote(call_id))

    def redeliver(self, call_id: str) -> Reply[list[DeliveryInfo] | CallStatus | str | None]:
        return Reply(lambda: self.handle.redeliver.remote(call_id))

    def cancel(self, call_id: str) -> Reply[CallInfo | CallStatus | None]:
        """Cancel a call; answers as ``describe`` does, afterwards."""
        return Reply(lambda: self.handle.cancel.remote(call_id))

    def call_graph(self, call_id: str) -> Reply[CallGraphNode | CallStatus | None]:
        return Reply(lambda: self.handle.call_graph.remote(call_id))

    def list_calls(self, query: CallQuery) -> Reply[list[CallInfo]]:
        return Reply(lambda: self.handle.list_calls.remote(query))

    def figures(self, window: float) -> Reply[dict[str, Any]]:
        return Reply(lambda: self.handle.figures.remote(window))

    def stats(self, app: str = "") -> Reply[dict[str, int]]:
        """Counts for the dashboard and tests; ``unfinished``: of ``app``'s calls."""
        return Reply(lambda: self.handle.stats.remote(app))

    def forget_app(self, app: str, cancel_why: str | None = None) -> Reply[int]:
        """``app`` was redeployed or stopped; with ``cancel_why`` its unfinished calls
        are cancelled (answers how many)."""
        return Reply(lambda: self.handle.forget_app.remote(app, cancel_why))

    def attempt_started(
        self, call_id: str, attempt: int, started_at: float, finished: Finished
    ) -> None:
        """Tell the registry that an attempt has run a little while (not waited for: a
        registry that is restarting misses it, and the call runs on)."""
        self.handle.attempt_started.remote(call_id, attempt, started_at, finished)

    def set_progress(self, call_id: str, attempt: int, progress: Progress) -> None:
        """Tell the registry how far a running call is (not waited for)."""
        self.handle.set_progress.remote(call_id, attempt, progress)

    def debug(self, operation: str, *args: Any) -> Reply[Any]:
        """The registry's ``debug_*`` operations, for benchmarks and tests."""
        return Reply(lambda: getattr(self.handle, f"debug_{operation}").remote(*args))


class ControlClient:
    """The control actor (``runtime/control.py``): deployed apps, secrets, schedules."""

    def __init__(self, handle: ActorHandle[ControlActor]) -> None:
        self.handle = handle

    def deploy(self, spec: AppSpec) -> Reply[tuple[AppInfo, AppInfo | None]]:
        """Deploy ``spec``: the new deployment, and the one it replaced."""
        return Reply(lambda: self.handle.deploy.remote(spec))

    def stop(self, app: str, cancel_why: str | None = None) -> Reply[int | None]:
        """Undeploy ``app`` (None: unknown); with ``cancel_why`` its calls are cancelled."""
        return Reply(lambda: self.handle.stop.remote(app, cancel_why))

    def roll_back(self, app: str, version: int) -> Reply[tuple[AppSpec, AppInfo] | None]:
        """Undo the deploy that made ``version``: what is deployed now, if anything."""
        return Reply(lambda: self.handle.roll_back.remote(app, version))

    def heartbeat(self, app: str) -> Reply[bool]:
        return Reply(lambda: self.handle.heartbeat.remote(app))

    def end_run(self, app: str, detach: bool) -> Reply[int]:
        return Reply(lambda: self.handle.end_run.remote(app, detach))

    def list_apps(self) -> Reply[list[AppInfo]]:
        return Reply(lambda: self.handle.list_apps.remote())

    def add_variant(self, app: str, name: str, changes: dict[str, Any]) -> Reply[str | NotDeployed]:
        """A copy of a function (or class) with option changes; its name."""
        return Reply(lambda: self.handle.add_variant.remote(app, name, changes))

    def describe_function(self, app: str, function: str) -> Reply[FunctionInfo | NotDeployed]:
        return Reply(lambda: self.handle.describe_function.remote(app, function))

    def describe_app(self, app: str) -> Reply[list[FunctionInfo] | NotDeployed]:
        return Reply(lambda: self.handle.describe_app.remote(app))

    def get_function(self, app: str, function: str) -> Reply[LoadedVersion | NotDeployed]:
        return Reply(lambda: self.handle.get_function.remote(app, function))

    def image_problems(self, images: list[tuple[str, ImageSpec]]) -> Reply[list[str]]:
        """What the cluster cannot do of each ``(whose, image)``, a sentence each."""
        return Reply(lambda: self.handle.image_problems.remote(images))

    def volume(self, name: str, create: bool) -> Reply[bool]:
        """Whether volume ``name`` exists (made first, with ``create``)."""
        return Reply(lambda: self.handle.volume.remote(name, create))

    def delete_volume(self, name: str) -> Reply[bool]:
        return Reply(lambda: self.handle.delete_volume.remote(name))

    def volume_listdir(self, name: str, path: str, recursive: bool) -> Reply[list[Entry]]:
        return Reply(lambda: self.handle.volume_listdir.remote(name, path, recursive))

    def volume_read(self, name: str, path: str) -> Reply[bytes]:
        return Reply(lambda: self.handle.volume_read.remote(name, path))

    def volume_write(self, name: str, files: list[tuple[str, bytes]], force: bool) -> Reply[None]:
        return Reply(lambda: self.handle.volume_write.remote(name, files, force))

    def volume_remove(self, name: str, path: str, recursive: bool) -> Reply[None]:
        return Reply(lambda: self.handle.volume_remove.remote(name, path, recursive))

    def missing_secrets(self, names: list[str]) -> Reply[list[str]]:
        return Reply(lambda: self.handle.missing_secrets.remote(names))

    def put_secret(self, name: str, values: dict[str, str]) -> Reply[None]:
        return Reply(lambda: self.handle.put_secret.remote(name, values))

    def delete_secret(self, name: str) -> Reply[bool]:
        return Reply(lambda: self.handle.delete_secret.remote(name))

    def list_secrets(self) -> Reply[list[tuple[str, list[str]]]]:
        """Named secrets with their keys (never their values)."""
        return Reply(lambda: self.handle.list_secrets.remote())


class _StoreClient(Generic[Store]):
    """What a ``Dict`` or ``Queue`` handle sends to its actor (``runtime/stores.py``).

    Args:
        handle: the actor, found again after ``died``.
        died: its actor is dead for good: find it again, or raise.
        unsure: what to raise when an operation that is not ``repeatable`` may or may not
            have been applied (it was on its way when the actor restarted).
    """

    def __init__(
        self,
        handle: Callable[[], ActorHandle[Store]],
        died: Callable[[], None],
        unsure: Callable[[str], Exception],
    ) -> None:
        self._handle: Callable[[], ActorHandle[Store]] = handle
        self._died = died
        self._unsure = unsure

    def _reply(self, method: str, *args: Any, repeatable: bool = True) -> Reply[Any]:
        unsure = None if repeatable else (lambda: self._unsure(method))
        return Reply(
            lambda: getattr(self._handle(), method).remote(*args), unsure=unsure, died=self._died
        )

    def size(self) -> Reply[int]:
        return self._reply("size")

    def clear(self) -> Reply[None]:
        return self._reply("clear")

    def destroy(self) -> Reply[None]:
        """Drop the persisted contents (the store is being deleted)."""
        return self._reply("destroy")

    def debug_pid(self) -> Reply[int]:
        """The actor's process, for tests that restart it."""
        return self._reply("debug_pid")


class DictClient(_StoreClient["DictStore"]):
    """A ``Dict``'s actor: pickled keys and values."""

    def get(self, key: bytes) -> Reply[tuple[bool, bytes | None]]:
        return self._reply("get", key)

    def contains(self, key: bytes) -> Reply[bool]:
        return self._reply("contains", key)

    def put(self, key: bytes, value: bytes, skip_if_exists: bool) -> Reply[bool]:
        # Put-if-absent sent twice would find the first try's key: a lock we may hold
        # would look taken.
        return self._reply("put", key, value, skip_if_exists, repeatable=not skip_if_exists)

    def update(self, items: list[tuple[bytes, bytes]]) -> Reply[None]:
        return self._reply("update", items)

    def pop(self, key: bytes) -> Reply[tuple[bool, bytes | None]]:
        return self._reply("pop", key, repeatable=False)  # what the first try took is lost

    def items(self) -> Reply[list[tuple[bytes, bytes]]]:
        return self._reply("items")


class QueueClient(_StoreClient["QueueStore"]):
    """A ``Queue``'s actor: pickled values, first in first out."""

    def put_many(self, values: list[bytes]) -> Reply[None]:
        return self._reply("put_many", values, repeatable=False)  # twice in the queue

    def get_many(self, n: int, timeout: float | None) -> Reply[list[bytes]]:
        return self._reply("get_many", n, timeout, repeatable=False)


# -- finding the actors: the one place handles come from ------------------------------

_lock = threading.Lock()
_cached: dict[str, RegistryClient | ControlClient] = {}  # by kind: "registry"...
_cached_for: str | None = None  # the GCS address the cached clients belong to


def registry() -> RegistryClient:
    """The call registry of the connected cluster, created on first use."""
    return _client("registry", RegistryClient, _new_registry)


def control() -> ControlClient:
    """The control actor of the connected cluster, created on first use."""
    return _client("control", ControlClient, _new_control)


def existing_registry() -> RegistryClient | None:
    """The call registry if one runs; never creates one (a worker reporting to it, or
    the control actor telling it news, must not start one of its own)."""
    try:
        return _client("existing-registry", RegistryClient, _find_existing_registry)
    except ValueError:
        return None


def _new_registry() -> RegistryClient:
    from rayfn.runtime import handles  # here: the actor modules import this one

    return RegistryClient(handles.registry_actor())


def _new_control() -> ControlClient:
    from rayfn.runtime import handles

    return ControlClient(handles.control_actor())


def _find_existing_registry() -> RegistryClient:
    handle: ActorHandle[CallRegistry] = ray.get_actor(REGISTRY_ACTOR_NAME, namespace=NAMESPACE)
    return RegistryClient(handle)


def _client(kind: str, client_class: type[Client], find: Callable[[], Client]) -> Client:
    """The cached client of ``kind`` for the connected cluster, found with ``find``
    the first time (and again once the process is connected to another cluster)."""
    global _cached_for
    address: str = ray.get_runtime_context().gcs_address
    with _lock:
        if _cached_for != address:
            _cached.clear()
            _cached_for = address
        client = _cached.get(kind)
        if not isinstance(client, client_class):  # not found yet
            client = _cached[kind] = find()
        return client
