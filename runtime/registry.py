"""The call registry: the detached actor that owns every call.

It submits each attempt's Ray task itself, so it owns the result ``ObjectRef`` and the
result outlives the process that called ``.spawn()`` (Ray's ownership rule). It keeps
a FIFO queue per function for ``max_containers``, applies the retry policy (waiting out
backoff here, holding no worker), enforces ``timeout`` and ``startup_timeout`` with
timers, and answers ``get`` by waiting inside the actor and handing back the result's
*ref*: the caller fetches the value from the object store, never through this actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import defaultdict, deque
from collections.abc import Coroutine
from typing import Any

import psutil
import ray
from ray.experimental import internal_kv

from rayfn.runtime.calls import Call
from rayfn.runtime.constants import (
    CONTROL_RESTART_WAIT_S,
    DEFAULT_MAX_TOMBSTONES,
    EXPIRY_PAUSE_S,
    EXPIRY_SLICE,
    EXPIRY_TICK_S,
    KV_REGISTRY_EPOCH_PREFIX,
    NAMESPACE,
    REGISTRY_SHARD,
)
from rayfn.runtime.containers import Pool, Slot, stop_container
from rayfn.runtime.dispatch import LoadedFunction, describe_needs
from rayfn.runtime.executor import Finished
from rayfn.runtime.expiry import ExpiryQueue, Tombstones, expires_at
from rayfn.runtime.ids import new_call_id, parse_call_id
from rayfn.runtime.metrics import FLUSH_EVERY_S, CallMetrics
from rayfn.runtime.packing import PackPolicy
from rayfn.runtime.records import (
    AttemptMeta,
    CallGraphNode,
    CallInfo,
    CallOutcome,
    CallStatus,
    FailureKind,
    NotDeployed,
    RemoteFailure,
)

logger = logging.getLogger(__name__)

_SYNTHETIC = "synthetic"  # the function name of benchmark filler calls

# The terminal status a failure of each kind leaves a call in, once retries are over.
_FINAL_STATUS = {
    FailureKind.RAISED: CallStatus.FAILED,
    FailureKind.CRASHED: CallStatus.FAILED,
    FailureKind.NOT_STARTED: CallStatus.FAILED,
    FailureKind.TIMED_OUT: CallStatus.TIMED_OUT,
    FailureKind.CANCELLED: CallStatus.CANCELLED,
    FailureKind.BAD_RESULT: CallStatus.FAILED,
}


# How much of a call graph one answer carries.
_MAX_GRAPH_DEPTH = 16
_MAX_GRAPH_CHILDREN = 1000

# The counter a call's terminal status bumps (runtime/metrics.py).
_EVENT = {
    CallStatus.SUCCEEDED: "succeeded",
    CallStatus.FAILED: "failed",
    CallStatus.TIMED_OUT: "timed_out",
    CallStatus.CANCELLED: "cancelled",
}


class CallRegistry:
    """Owns calls: accepts them, runs them as Ray tasks, keeps results until expiry.

    Its state lives in memory. If the actor dies, Ray restarts it empty, and the tasks
    it owned die with it; every start counts as a new *epoch* (kept in the GCS), and
    call ids carry the epoch that issued them, so an id of an earlier epoch is
    answered "lost" (``CallLostError``), never "not found".
    """

    def __init__(
        self, max_tombstones: int = DEFAULT_MAX_TOMBSTONES, shard: int = REGISTRY_SHARD
    ) -> None:
        self._shard = shard
        self._epoch = _next_epoch(shard)
        self._spawn_batches = 0  # round trips of coalesced spawns, for stats()
        self._packs = 0  # tasks that ran several calls, for stats()
        self._metrics = CallMetrics()
        # parent call id -> the calls spawned from inside it (only for calls that did).
        self._children: defaultdict[str, list[str]] = defaultdict(list)
        # Containers of @app.cls classes, per (app, class, version).
        self._pools: dict[tuple[str, str, int], Pool] = {}
        self._calls: dict[str, Call] = {}  # in creation order: listings walk it backwards
        self._functions: dict[tuple[str, str], LoadedFunction] = {}
        self._queues: defaultdict[tuple[str, str], deque[Call]] = defaultdict(deque)
        self._running: defaultdict[tuple[str, str], int] = defaultdict(int)  # tasks
        # How long each function version's calls run: short ones are packed.
        self._packing = PackPolicy()
        self._expiry = ExpiryQueue()
        self._tombstones = Tombstones(max_tombstones)
        self._background: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._start(self._expire_forever())
        self._start(self._report_forever())

    # -- accepting calls ---------------------------------------------------------------

    async def spawn(self, app: str, function: str, args_blob: bytes) -> str | NotDeployed:
        """Accept a call of ``app.function`` with pickled ``(args, kwargs)``; return
        its id at once."""
        ids = await self.spawn_many(app, function, [args_blob])
        return ids if isinstance(ids, NotDeployed) else ids[0]

    async def spawn_many(
        self, app: str, function: str, blobs: list[bytes], parent: str | None = None
    ) -> list[str] | NotDeployed:
        """Accept several calls of one function in one round trip, in order;
        ``parent`` is the call they were spawned from, if any."""
        loaded = await self._function(app, function)
        if isinstance(loaded, NotDeployed):
            return loaded
        ids = [self._accept(loaded, blob, parent) for blob in blobs]
        self._pump_soon(loaded)
        return ids

    async def spawn_batch(
        self, items: list[tuple[str, str, bytes, str | None]]
    ) -> list[str | NotDeployed]:
        """Accept calls of any functions, ``(app, function, args_blob, parent call
        id)`` each, in order: what a client's coalesced ``spawn()``s send
        (sdk/_spawner.py)."""
        self._spawn_batches += 1
        answers: list[str | NotDeployed] = []
        touched: dict[tuple[str, str], LoadedFunction] = {}
        for app, function, blob, parent in items:
            loaded = touched.get((app, function)) or await self._function(app, function)
            if isinstance(loaded, NotDeployed):
                answers.append(loaded)
                continue
            touched[(app, function)] = loaded
            answers.append(self._accept(loaded, blob, parent))
        for loaded in touched.values():
            self._pump_soon(loaded)
        return answers

    async def spawn_and_get(
        self, app: str, function: str, blob: bytes, parent: str | None, timeout: float | None
    ) -> tuple[str, CallOutcome] | NotDeployed:
        """``spawn`` and then ``get`` in one round trip: what ``f.spawn(...).get()``
        and ``f.remote(...)`` send when no other call of the client is ahead of it."""
        loaded = await self._function(app, function)
        if isinstance(loaded, NotDeployed):
            return loaded
        call_id = self._accept(loaded, blob, parent)
        self._pump(loaded)  # now: the answer waits for the call anyway
        return call_id, await self.get(call_id, timeout)

    def _accept(self, loaded: LoadedFunction, blob: bytes, parent: str | None = None) -> str:
        app, function, _ = loaded.key
        call = Call(
            new_call_id(self._shard, self._epoch), app, function, blob, loaded.options.result_ttl
        )
        self._calls[call.call_id] = call
        if parent is not None and parent in self._calls:
            self._children[parent].append(call.call_id)
        self._queues[(app, function)].append(call)
        self._metrics.count("spawned", app, function)
        return call.call_id

    def _pump_soon(self, loaded: LoadedFunction) -> None:
        """Pump after this method has answered: the caller gets its ids without
        waiting for Ray to take the tasks."""
        self._loop.call_soon(self._pump, loaded)

    # -- answering -----------------------------------------------------------------------

    async def get(self, call_id: str, timeout: float | None) -> CallOutcome:
        """Wait up to ``timeout`` seconds (None: forever, 0: not at all) for a call to
        finish, then say where it stands; a finished call comes with its result ref."""
        call = self._calls.get(call_id)
        if call is None:
            return CallOutcome(self._gone(call_id))
        if not call.status.is_terminal and timeout != 0:
            await self._wait(call, timeout)
        return self._outcome(call)

    async def get_with_others(
        self, call_id: str, timeout: float | None, others: list[str]
    ) -> tuple[CallOutcome, dict[str, CallOutcome]]:
        """``get`` for one call, plus the answers for those of ``others`` that have
        finished by then: a client that spawned many calls fetches them in few trips."""
        outcome = await self.get(call_id, timeout)
        finished = {}
        for other in others:
            call = self._calls.get(other)
            if call is not None and call.status.is_terminal:
                finished[other] = self._outcome(call)
        return outcome, finished

    async def get_many(self, call_ids: list[str], timeout: float | None) -> list[CallOutcome]:
        """``get`` for several calls at once: waits until all have finished (or the
        timeout passes), then answers for each, in order."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for call_id in call_ids:
            call = self._calls.get(call_id)
            if call is None or call.status.is_terminal:
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0:
                break
            await self._wait(call, left)
        return [await self.get(call_id, 0) for call_id in call_ids]

    async def wait_any(self, call_ids: list[str], timeout: float | None) -> list[str]:
        """The ids among ``call_ids`` that have finished, waiting (up to ``timeout``)
        until at least one has."""
        done = [i for i in call_ids if self._finished(i)]
        if done or not call_ids or timeout == 0:
            return done
        waiters = []
        for call_id in call_ids:
            call = self._calls[call_id]
            if call.done is None:
                call.done = asyncio.Event()
            waiters.append(asyncio.ensure_future(call.done.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return [i for i in call_ids if self._finished(i)]

    async def call_graph(self, call_id: str) -> CallGraphNode | CallStatus | None:
        """A call with the calls spawned from inside it, recursively (children that
        expired are left out); for an untracked id, as ``describe``."""
        call = self._calls.get(call_id)
        if call is None:
            return self._gone(call_id)
        return self._graph(call, depth=0)

    def _graph(self, call: Call, depth: int) -> CallGraphNode:
        children = []
        if depth < _MAX_GRAPH_DEPTH:
            for child_id in self._children.get(call.call_id, ())[:_MAX_GRAPH_CHILDREN]:
                child = self._calls.get(child_id)
                if child is not None:
                    children.append(self._graph(child, depth + 1))
        app = call.app.split("@", 1)[0]
        return CallGraphNode(call.call_id, app, call.function, call.status, tuple(children))

    async def describe(self, call_id: str) -> CallInfo | CallStatus | None:
        """The status record of a call; for one no longer tracked, EXPIRED or LOST
        (see ``_gone``), or None for an id never accepted."""
        call = self._calls.get(call_id)
        if call is None:
            return self._gone(call_id)
        if self._expire_if_due(call):
            return CallStatus.EXPIRED
        return call.info()

    async def list_calls(
        self,
        app: str | None = None,
        function: str | None = None,
        status: CallStatus | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[CallInfo]:
        """Calls newest first, filtered; ``before`` (a call id) continues a listing."""
        found: list[CallInfo] = []
        seeking = before is not None
        for call in reversed(self._calls.values()):
            if seeking:
                seeking = call.call_id != before
                continue
            if app is not None and call.app.split("@", 1)[0] != app:
                continue
            if function is not None and call.function != function:
                continue
            if status is not None and call.status is not status:
                continue
            found.append(call.info())
            if len(found) >= limit:
                break
        return found

    # -- steering ------------------------------------------------------------------------

    async def cancel(self, call_id: str) -> CallInfo | CallStatus | None:
        """Cancel a call: a queued one never runs, a running one is stopped (its worker
        is killed), a finished one is left as it is. For an untracked id, as
        ``describe``."""
        call = self._calls.get(call_id)
        if call is None:
            return self._gone(call_id)
        if not call.status.is_terminal:
            # Handed to Ray: stop it; the watcher frees the slot. A packed call that has
            # not reported RUNNING may be waiting behind others of its pack: its pack
            # runs on, and whatever it does is not recorded.
            waiting_in_pack = call.packed and call.status is not CallStatus.RUNNING
            if call.task is not None and not waiting_in_pack:
                call.interrupt = FailureKind.CANCELLED
                self._stop_attempt(call)
            # A queued call stays in its deque and is skipped when its turn comes.
            self._finish(
                call,
                CallStatus.CANCELLED,
                failure=RemoteFailure.of_kind(FailureKind.CANCELLED, "The call was cancelled."),
            )
            if call.current is not None and call.current.outcome is None:
                call.current.end(FailureKind.CANCELLED.value)
        return call.info()

    async def attempt_started(
        self, call_id: str, attempt: int, started_at: float, finished: Finished = ()
    ) -> None:
        """Called by the executor once a call has run a little while: RUNNING, and
        the timeout clock starts. In a pack, ``finished`` are the calls of the pack
        that ended before this one: recorded now, so a timeout or cancel that takes
        the pack down cannot lose them."""
        for other_id, number, meta in finished:
            other = self._calls.get(other_id)
            loaded = self._functions.get(other.key) if other is not None else None
            if other is not None and loaded is not None and other.is_open(number):
                self._record(other, loaded, number, meta, None)
        call = self._calls.get(call_id)
        if call is None or call.status is not CallStatus.PENDING or len(call.attempts) != attempt:
            return  # stale: that attempt already ended, or the call did
        current = call.attempts[-1]
        current.started_at = started_at
        call.status = CallStatus.RUNNING
        call.stop_timer()
        loaded = self._functions.get(call.key)
        timeout = loaded.options.timeout if loaded else None
        if timeout is not None:
            left = max(0.0, started_at + timeout - time.time())
            call.timer = self._loop.call_later(
                left, self._interrupt, call, attempt, FailureKind.TIMED_OUT
            )

    async def forget_app(self, app: str) -> None:
        """Drop cached code of ``app`` (it was redeployed or stopped); its class
        containers finish what they run, then go once idle."""
        stale = {k: self._functions.pop(k) for k in [k for k in self._functions if k[0] == app]}
        self._packing.forget(app)
        for pool_key, pool in self._pools.items():
            if pool_key[0] == app:
                pool.retired = True
        # The redeploy rule: a call that has not started runs the version deployed when
        # it starts, so the queues move to the new version now, not at the next spawn.
        for key in [k for k, queue in self._queues.items() if k[0] == app and queue]:
            await self._reload_and_pump(key, stale.get(key))

    async def stats(self) -> dict[str, int]:
        return {
            "tracked_calls": len(self._calls),
            "queued": sum(len(q) for q in self._queues.values()),
            "running": sum(self._running.values()),
            "expiry_queue": len(self._expiry),
            "tombstones": len(self._tombstones),
            "spawn_batches": self._spawn_batches,
            "packs": self._packs,
        }

    # -- for benchmarks/bench.py: scale and expiry without running a million tasks --------

    async def debug_fill_finished(self, count: int, result_ttl: float) -> int:
        """Track ``count`` synthetic finished calls of ``rayfn-bench.synthetic``."""
        now = time.time()
        for _ in range(count):
            call_id = new_call_id(self._shard, self._epoch)
            call = Call(call_id, "rayfn-bench", _SYNTHETIC, b"", result_ttl)
            call.status = CallStatus.SUCCEEDED
            call.finished_at = now
            call.args = None
            self._calls[call.call_id] = call
            self._expiry.push(call.call_id, expires_at(now, result_ttl))
        return len(self._calls)

    async def debug_clear(self) -> None:
        """Forget the synthetic calls (their heap entries expire as unknown ids)."""
        for call_id in [i for i, c in self._calls.items() if c.function == _SYNTHETIC]:
            del self._calls[call_id]
        gc.collect()

    async def debug_memory(self) -> dict[str, int]:
        """This actor's resident memory and how many calls it tracks."""
        gc.collect()
        return {"rss": psutil.Process().memory_info().rss, "tracked_calls": len(self._calls)}

    # -- dispatching ---------------------------------------------------------------------

    def _pump(self, loaded: LoadedFunction) -> None:
        """Hand queued calls of one function to Ray while it is under max_containers
        (for a class's method: while its pool has or may add a free container)."""
        key = (loaded.key[0], loaded.key[1])
        queue = self._queues.get(key)
        if queue is None:
            return
        if loaded.options.container is not None:
            self._pump_method(loaded, queue)
            return
        limit = loaded.options.max_containers
        while queue and (limit is None or self._running[key] < limit):
            size = self._packing.size(loaded.key, loaded.can_pack, len(queue))
            if size == 1:
                call = queue.popleft()
                if call.status is CallStatus.QUEUED:
                    self._launch(call, loaded)
                continue
            pack: list[Call] = []
            while queue and len(pack) < size:
                call = queue.popleft()
                if call.status is CallStatus.QUEUED:
                    pack.append(call)
            if pack:
                self._launch_pack(pack, loaded)
        if not queue:
            del self._queues[key]

    def _pump_latest(self, known: LoadedFunction) -> None:
        """Pump ``known``'s function with its current version: the cached one, else
        (its app was redeployed meanwhile) the one the control actor has now, else
        (the app was stopped) ``known``."""
        key = (known.key[0], known.key[1])
        current = self._functions.get(key)
        if current is None:
            self._start(self._reload_and_pump(key, known))
        elif current.options.container is not None:
            self._pump_class(current.key[0], current.options.container.class_name)
        else:
            self._pump(current)

    async def _reload_and_pump(self, key: tuple[str, str], known: LoadedFunction | None) -> None:
        """Pump ``key``'s queue with the version deployed now; if its app was stopped,
        with ``known`` (its calls run the last version's code)."""
        loaded = await self._function(*key)
        if not isinstance(loaded, NotDeployed):
            self._pump(loaded)
        elif known is not None:
            self._pump(known)

    def _pump_method(self, loaded: LoadedFunction, queue: deque[Call]) -> None:
        pool = self._pool(loaded)
        while queue:
            if queue[0].status is not CallStatus.QUEUED:
                queue.popleft()  # cancelled while it waited
                continue
            slot = pool.acquire(loaded.start_container)
            if slot is None:
                break
            self._launch(queue.popleft(), loaded, slot)
        if not queue:
            del self._queues[(loaded.key[0], loaded.key[1])]

    def _pool(self, loaded: LoadedFunction) -> Pool:
        container = loaded.options.container
        assert container is not None
        key = (loaded.key[0], container.class_name, loaded.key[2])
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = Pool(container)
        return pool

    def _pump_class(self, app: str, class_name: str) -> None:
        """A container freed a slot: any method of its class may use it."""
        for loaded in list(self._functions.values()):
            container = loaded.options.container
            if loaded.key[0] == app and container and container.class_name == class_name:
                self._pump(loaded)

    def _launch(self, call: Call, loaded: LoadedFunction, slot: Slot | None = None) -> None:
        attempt = len(call.attempts) + 1
        try:
            if slot is None:
                meta_ref, payload_ref = loaded.submit(call.call_id, attempt, call.args)
            else:
                meta_ref, payload_ref = loaded.submit_to(slot, call.call_id, attempt, call.args)
        except Exception as exc:  # e.g. resources Ray rejects outright
            logger.warning("call %s could not be submitted: %s", call.call_id, exc)
            if slot is not None:
                self._pool(loaded).release(slot)
            self._finish(call, CallStatus.FAILED, failure=RemoteFailure.from_ray_error(exc))
            return
        call.dispatched(attempt, meta_ref, container=slot)
        self._running[call.key] += 1
        startup = loaded.options.startup_timeout
        if startup is not None:
            call.timer = self._loop.call_later(
                startup, self._interrupt, call, attempt, FailureKind.NOT_STARTED
            )
        self._start(self._watch(call, loaded, attempt, meta_ref, payload_ref))

    def _launch_pack(self, calls: list[Call], loaded: LoadedFunction) -> None:
        """Hand several calls to Ray as one task that runs them in turn."""
        pack = [(call, len(call.attempts) + 1) for call in calls]
        try:
            metas_ref, payload_ref = loaded.submit_pack(
                [(call.call_id, attempt, call.args or b"") for call, attempt in pack]
            )
        except Exception as exc:  # as in _launch
            logger.warning("a pack of %d calls could not be submitted: %s", len(calls), exc)
            for call in calls:
                self._finish(call, CallStatus.FAILED, failure=RemoteFailure.from_ray_error(exc))
            return
        for call, attempt in pack:
            call.dispatched(attempt, metas_ref, packed=True)
        self._running[calls[0].key] += 1
        self._packs += 1
        self._start(self._watch_pack(pack, loaded, metas_ref, payload_ref))

    def _interrupt(self, call: Call, attempt: int, why: FailureKind) -> None:
        """Kill a running attempt (timeout) or a still-pending one (startup timeout)."""
        call.timer = None
        if call.status.is_terminal or len(call.attempts) != attempt or call.task is None:
            return
        if why is FailureKind.NOT_STARTED and call.status is not CallStatus.PENDING:
            return
        call.interrupt = why
        self._stop_attempt(call)

    def _stop_attempt(self, call: Call) -> None:
        """Kill a running attempt: its task's worker, or (a method call) its container,
        since Ray cannot force-cancel one call of an actor. The container's other calls
        then fail as crashed, and are retried by their policy."""
        if call.container is None:
            ray.cancel(call.task, force=True)
            return
        loaded = self._functions.get(call.key)
        if loaded is not None and loaded.options.container is not None:
            self._pool(loaded).discard(call.container)
        else:
            ray.kill(call.container.handle)

    async def _watch(
        self,
        call: Call,
        loaded: LoadedFunction,
        attempt_number: int,
        meta_ref: ray.ObjectRef,
        payload_ref: ray.ObjectRef,
    ) -> None:
        attempt = call.attempts[attempt_number - 1]
        failure: RemoteFailure | None = None
        meta: AttemptMeta | None = None
        try:
            meta = await meta_ref
        except ray.exceptions.RayError as exc:
            failure = self._interrupted(call, loaded, exc)
            if call.container is not None and isinstance(exc, ray.exceptions.RayActorError):
                self._pool(loaded).discard(call.container)  # the container is gone
        finally:
            self._running[call.key] -= 1
            call.task = None
            if call.container is not None:
                self._pool(loaded).release(call.container)
                call.container = None
            if call.status is not CallStatus.CANCELLED:
                call.stop_timer()
        try:
            if call.status.is_terminal:  # cancelled while it ran: nothing more to record
                return
            if meta is not None:
                self._record(call, loaded, attempt_number, meta, payload_ref)
                return
            assert failure is not None
            attempt.end(failure.kind.value, failure.summary)
            self._failed(call, loaded, failure.kind, None, failure)
        finally:
            self._pump_latest(loaded)

    async def _watch_pack(
        self,
        pack: list[tuple[Call, int]],
        loaded: LoadedFunction,
        metas_ref: ray.ObjectRef,
        payload_ref: ray.ObjectRef,
    ) -> None:
        metas: list[AttemptMeta] | None = None
        error: ray.exceptions.RayError | None = None
        try:
            metas = await metas_ref
        except ray.exceptions.RayError as exc:  # killed (timeout, cancel) or crashed
            error = exc
        finally:
            self._running[pack[0][0].key] -= 1
        try:
            unstarted = []
            interrupted = False
            for index, (call, number) in enumerate(pack):
                if call.task is metas_ref:
                    call.task = None
                    call.packed = False
                if not call.is_open(number):  # recorded from a report, or cancelled
                    continue
                if metas is not None and index < len(metas):
                    last = index == len(metas) - 1
                    self._record(call, loaded, number, metas[index], payload_ref if last else None)
                elif metas is None and (
                    call.interrupt is not None or call.status is CallStatus.RUNNING
                ):
                    # Timed out or cancelled, or the one running when the worker died.
                    assert error is not None
                    interrupted = interrupted or call.interrupt is not None
                    call.stop_timer()
                    failure = self._interrupted(call, loaded, error)
                    call.attempts[-1].end(failure.kind.value, failure.summary)
                    self._failed(call, loaded, failure.kind, None, failure)
                else:
                    unstarted.append(call)
            if metas is None and not interrupted:
                logger.warning(
                    "a pack of %s died (%s): its calls run one per task from now on",
                    loaded.task_name,
                    error,
                )
                self._packing.crashed(loaded.key)
            self._requeue_unstarted(unstarted)
        finally:
            self._pump_latest(loaded)

    def _requeue_unstarted(self, calls: list[Call]) -> None:
        """Queue again, first in line and in order, packed calls their pack never got
        to (it stopped early, or died first): their attempt did not happen."""
        for call in reversed(calls):
            call.attempts.pop()
            call.status = CallStatus.QUEUED
            self._queues[call.key].appendleft(call)

    def _record(
        self,
        call: Call,
        loaded: LoadedFunction,
        number: int,
        meta: AttemptMeta,
        payload_ref: ray.ObjectRef | None,
    ) -> None:
        """How attempt ``number`` went, as its executor said."""
        call.stop_timer()
        attempt = call.attempts[number - 1]
        attempt.started_at = attempt.started_at or meta.started_at
        if number == 1:
            self._metrics.queue_wait(call.app, call.function, attempt.started_at - call.created_at)
        self._packing.observe(loaded.key, meta.finished_at - meta.started_at)
        if meta.ok:
            attempt.end("succeeded", at=meta.finished_at)
            call.inline = meta.inline
            call.payload = None if meta.inline is not None else payload_ref
            self._finish(call, CallStatus.SUCCEEDED, at=meta.finished_at)
            return
        failure = meta.failure
        assert failure is not None
        attempt.end(failure.kind.value, failure.summary, at=meta.finished_at)
        self._failed(call, loaded, failure.kind, failure.type_name, failure)

    def _interrupted(self, call: Call, loaded: LoadedFunction, exc: Exception) -> RemoteFailure:
        why = call.interrupt
        if why is FailureKind.TIMED_OUT:
            return RemoteFailure.of_kind(
                why, f"{loaded.task_name} ran past its timeout of {loaded.options.timeout:g} s."
            )
        if why is FailureKind.NOT_STARTED:
            return RemoteFailure.of_kind(
                why,
                f"{loaded.task_name} did not start within its startup_timeout of "
                f"{loaded.options.startup_timeout:g} s: no node could run it "
                f"({describe_needs(loaded.options)}).",
            )
        if why is FailureKind.CANCELLED:
            return RemoteFailure.of_kind(why, "The call was cancelled.")
        logger.warning("call %s attempt failed in Ray: %s", call.call_id, exc)
        return RemoteFailure.from_ray_error(exc)

    def _failed(
        self,
        call: Call,
        loaded: LoadedFunction,
        kind: FailureKind,
        error_type: str | None,
        failure: RemoteFailure,
    ) -> None:
        """An attempt failed: retry after the backoff delay, or end the call."""
        retryable = kind in (FailureKind.RAISED, FailureKind.CRASHED, FailureKind.TIMED_OUT)
        policy = loaded.options.retries
        made = len(call.attempts)
        if retryable and policy.should_retry(
            made, error_type if kind is FailureKind.RAISED else None
        ):
            call.status = CallStatus.RETRYING
            self._metrics.count("retried", call.app, call.function)
            delay = policy.next_delay(made)
            call.timer = self._loop.call_later(delay, self._requeue, call, loaded)
            return
        self._finish(call, _FINAL_STATUS[kind], failure=failure)

    def _requeue(self, call: Call, loaded: LoadedFunction) -> None:
        call.timer = None
        if call.status is not CallStatus.RETRYING:
            return  # cancelled meanwhile
        call.status = CallStatus.QUEUED
        # A retry keeps its place ahead of calls submitted after it.
        self._queues[call.key].appendleft(call)
        self._pump_latest(loaded)

    def _finish(
        self,
        call: Call,
        status: CallStatus,
        *,
        at: float | None = None,
        failure: RemoteFailure | None = None,
    ) -> None:
        call.status = status
        call.finished_at = at if at is not None else time.time()
        call.failure = failure
        self._metrics.count(_EVENT[status], call.app, call.function)
        current = call.current
        if current is not None and current.started_at is not None:
            self._metrics.run_time(call.app, call.function, call.finished_at - current.started_at)
        call.args = None  # no attempt will need them again
        call.stop_timer()
        self._expiry.push(call.call_id, expires_at(call.finished_at, call.result_ttl))
        if call.done is not None:
            call.done.set()

    # -- reading state -------------------------------------------------------------------

    async def _wait(self, call: Call, timeout: float | None) -> None:
        if call.done is None:
            call.done = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.done.wait(), timeout)

    def _finished(self, call_id: str) -> bool:
        call = self._calls.get(call_id)
        return call is None or call.status.is_terminal

    def _outcome(self, call: Call) -> CallOutcome:
        if self._expire_if_due(call):
            return CallOutcome(CallStatus.EXPIRED)
        deadline = (
            expires_at(call.finished_at, call.result_ttl) if call.finished_at is not None else None
        )
        return CallOutcome(call.status, call.payload, call.failure, call.inline, deadline)

    # -- machinery -----------------------------------------------------------------------

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _function(self, app: str, function: str) -> LoadedFunction | NotDeployed:
        loaded = self._functions.get((app, function))
        if loaded is not None:
            return loaded
        found = await _ask_control("get_function", app, function)
        if isinstance(found, NotDeployed):
            return found
        version, options, runtime_env = found
        loaded = LoadedFunction.build((app, function, version), options, runtime_env)
        self._functions[(app, function)] = loaded
        if options.container is not None:  # keep min_containers warm from now on
            self._pool(loaded).warm(loaded.start_container)
        return loaded

    def _gone(self, call_id: str) -> CallStatus | None:
        """Why an id is not tracked: EXPIRED (a tombstone says so), LOST (an earlier
        epoch of this shard issued it: it died with that epoch, or expired before),
        or None (never issued, or expired so long ago its tombstone is gone)."""
        if call_id in self._tombstones:
            return CallStatus.EXPIRED
        origin = parse_call_id(call_id)
        if origin is not None and origin.shard == self._shard and origin.epoch < self._epoch:
            return CallStatus.LOST
        return None

    def _expire_if_due(self, call: Call) -> bool:
        if call.expired(time.time()):
            self._expire(call.call_id)
            return True
        return False

    def _expire(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None:
            self._tombstones.add(call_id)
            self._children.pop(call_id, None)
            self._metrics.count("expired", call.app, call.function)

    def expire_due_calls(self, now: float, limit: int | None = None) -> int:
        """Drop the results whose deadline has passed (at most ``limit``); returns how
        many."""
        count = 0
        for call_id in self._expiry.pop_due(now, limit):
            self._expire(call_id)
            count += 1
        return count

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:
                queued = {key: len(queue) for key, queue in self._queues.items()}
                running = {key: n for key, n in self._running.items() if n}
                self._metrics.flush(queued, running)
                self._scale_down()
            except Exception:  # metrics must never take the registry down
                logger.exception("metrics flush or scale-down failed")

    def _scale_down(self) -> None:
        """Stop containers idle past their scaledown_window (above min_containers),
        running their @exit methods first."""
        now = time.monotonic()
        for key, pool in list(self._pools.items()):
            for slot in pool.idle_to_stop(now):
                self._start(stop_container(slot.handle))
            if pool.retired and not pool.slots:
                del self._pools[key]

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_TICK_S)
            try:
                # A burst (100k results of one batch expiring together) goes in slices,
                # pausing between them, so spawn and get never wait behind it.
                while self.expire_due_calls(time.time(), EXPIRY_SLICE) == EXPIRY_SLICE:
                    await asyncio.sleep(EXPIRY_PAUSE_S)
            except Exception:  # never let one bad entry stop expiry for good
                logger.exception("expiry pass failed")


def _next_epoch(shard: int) -> int:
    """Count one more start of registry ``shard`` in the GCS; return the new count."""
    key = f"{KV_REGISTRY_EPOCH_PREFIX}{shard}"
    previous = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
    epoch = int(previous) + 1 if previous else 1
    internal_kv._internal_kv_put(key, str(epoch).encode(), overwrite=True, namespace=NAMESPACE)
    if epoch > 1:
        logger.warning(
            "registry shard %d restarted (epoch %d): calls of earlier epochs are lost",
            shard,
            epoch,
        )
    return epoch


async def _ask_control(method: str, *args: Any) -> Any:
    """Call the control actor, waiting out a restart of it (its calls are reads)."""
    # Imported here: the handles module imports this one to wrap it as an actor.
    from rayfn.runtime.handles import control_actor

    deadline = time.monotonic() + CONTROL_RESTART_WAIT_S
    while True:
        try:
            return await getattr(control_actor(), method).remote(*args)
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.ActorDiedError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
