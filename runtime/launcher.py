"""The Ray side of running calls: deployed functions as the registry runs them (read
from the control actor, cached), submitting the tasks (or method calls to ``@app.cls``
containers) the call book launches, watching them end, killing them, and the pools of
containers. The registry owns this; every decision about calls is the book's, and
about stopping idle containers ``containers.py``'s."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import ray

from rayfn.records import FailureKind
from rayfn.runtime import clients
from rayfn.runtime._ray_compat import pending_demand
from rayfn.runtime.commands import Launch, Policy
from rayfn.runtime.constants import RECLAIM_CHECK_S
from rayfn.runtime.containers import Pool, Slot, stop_container, to_reclaim
from rayfn.runtime.dispatch import LoadedFunction, MetaRef, PayloadRef, StreamRefs
from rayfn.runtime.identity import FunctionKey as Key
from rayfn.runtime.identity import FunctionVersion
from rayfn.runtime.records import AttemptMeta, NotDeployed, RemoteFailure, StreamEnd
from rayfn.runtime.resources import Resources, held_resources
from rayfn.runtime.streams import CallStream

logger = logging.getLogger(__name__)

# (launch, how each of its calls went or None, Ray's error if it died, large result)
OnEnd = Callable[[Launch, list[AttemptMeta] | None, RemoteFailure | None, Any], object]


class Launcher:
    def __init__(self, on_end: OnEnd, streams: dict[str, CallStream]) -> None:
        self._on_end = on_end
        self._streams = streams  # generator calls' values, by call id (the registry's)
        self.functions: dict[Key, LoadedFunction] = {}  # the current version of each
        # Call id -> its launch in flight, the task's first return (a generator's
        # stream), its container.
        self._flying: dict[str, tuple[Launch, MetaRef | StreamRefs, Slot | None]] = {}
        self._pools: dict[tuple[str, str, int], Pool] = {}  # per (app, class, version)
        self._watchers: set[asyncio.Task[None]] = set()
        self._stopping: dict[asyncio.Task[None], Resources] = {}  # containers on their way out
        self._reclaiming: asyncio.Task[None] | None = None  # a look at Ray's pending demand
        self._next_reclaim = 0.0  # monotonic time of the next look allowed

    async def function(self, key: Key) -> LoadedFunction | NotDeployed:
        """The deployed version of ``key``'s function (cached until ``forget``)."""
        loaded = self.functions.get(key)
        if loaded is not None:
            return loaded
        found = await clients.control().get_function(*key)
        if isinstance(found, NotDeployed):
            return found
        version, options, runtime_env = found
        loaded = LoadedFunction.build(FunctionVersion(*key, version), options, runtime_env)
        self.functions[key] = loaded
        if options.container is not None:  # keep min_containers warm from now on
            self.pool(loaded).warm(loaded.start_container)
        return loaded

    def forget(self, app: str) -> dict[Key, LoadedFunction]:
        """``app`` was redeployed or stopped: its versions are read again when next
        needed, and its containers go once idle. Returns the versions it dropped."""
        for (deployment, _, _), pool in self._pools.items():
            if deployment == app:
                pool.retired = True
        dropped = [k for k in self.functions if k.deployment == app]
        return {k: self.functions.pop(k) for k in dropped}

    def pumpable(self, loaded: LoadedFunction) -> list[tuple[Policy, int | None]]:
        """The functions whose queues may move now that ``loaded``'s may, each with
        the room its pool has (None: no pool, or no bound): for a class's method,
        every method of its class, since a freed container may serve any of them."""
        container = loaded.options.container
        if container is None:
            return [(loaded.policy, None)]
        siblings = {f.key: f for f in [loaded, *self.functions.values()]}.values()
        return [
            (f.policy, self.pool(f).capacity())
            for f in siblings
            if f.key.deployment == loaded.key.deployment
            and f.options.container
            and f.options.container.class_name == container.class_name
        ]

    def launch(self, launch: Launch) -> str | RemoteFailure:
        """Hand ``launch`` to Ray: the id of the task that runs it, or a failure if Ray
        refuses it outright."""
        loaded: LoadedFunction = launch.policy.runner
        if loaded.options.generator:
            return self._launch_stream(launch, loaded)
        slot = None
        try:
            if loaded.options.container is not None:
                slot = self.pool(loaded).acquire(loaded.start_container)
                assert slot is not None, "the book launched past the pool's capacity"
                if loaded.options.max_batch_size:
                    meta_ref, payload_ref = loaded.batch_to(slot, launch.calls)
                else:
                    meta_ref, payload_ref = loaded.submit_to(slot, launch.calls[0])
            elif len(launch.calls) > 1 or loaded.options.max_batch_size:
                meta_ref, payload_ref = loaded.submit_pack(launch.calls)
            else:
                meta_ref, payload_ref = loaded.submit(launch.calls[0])
        except Exception as exc:  # e.g. resources Ray rejects outright
            logger.warning("%s could not be submitted: %s", loaded.task_name, exc)
            if slot is not None:
                self.pool(loaded).release(slot)
            return RemoteFailure.from_ray_error(exc)
        for call in launch.calls:
            self._flying[call.call_id] = (launch, meta_ref, slot)
        self._keep(self._watch(launch, meta_ref, payload_ref, slot))
        return meta_ref.task_id().hex()

    def _launch_stream(self, launch: Launch, loaded: LoadedFunction) -> str | RemoteFailure:
        """A generator function's call: its values go to its stream as they come."""
        (call,) = launch.calls  # never packed
        slot = None
        try:
            if loaded.options.container is not None:
                slot = self.pool(loaded).acquire(loaded.start_container)
                assert slot is not None, "the book launched past the pool's capacity"
                refs = loaded.stream_to(slot, call)
            else:
                refs = loaded.submit_stream(call)
        except Exception as exc:
            logger.warning("%s could not be submitted: %s", loaded.task_name, exc)
            if slot is not None:
                self.pool(loaded).release(slot)
            return RemoteFailure.from_ray_error(exc)
        self._flying[call.call_id] = (launch, refs, slot)
        self._keep(self._watch_stream(launch, refs, slot))
        return str(refs.completed().task_id().hex())

    def _keep(self, watch: Coroutine[Any, Any, None]) -> None:
        watcher = asyncio.get_running_loop().create_task(watch)
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    def launch_of(self, call_id: str) -> Launch | None:
        entry = self._flying.get(call_id)
        return entry[0] if entry else None

    def kill(self, call_id: str) -> None:
        """Stop a call's attempt: its task's worker, or (a method call) its container,
        since Ray cannot force-cancel one call of an actor. The container's other
        calls then fail as crashed, and are retried by their policy."""
        entry = self._flying.get(call_id)
        if entry is None:
            return
        launch, ref, slot = entry
        if slot is None:
            ray.cancel(ref, force=True)
        else:
            self.pool(launch.policy.runner).discard(slot)

    async def _watch(
        self, launch: Launch, meta_ref: MetaRef, payload_ref: PayloadRef, slot: Slot | None
    ) -> None:
        metas: list[AttemptMeta] | None = None
        crash: RemoteFailure | None = None
        try:
            found = await meta_ref
            metas = found if isinstance(found, list) else [found]
        except ray.exceptions.RayError as exc:  # killed (timeout, cancel) or crashed
            logger.info("%s ended in Ray: %s", launch.policy.label, exc)
            crash = RemoteFailure.from_ray_error(exc)
            if slot is not None and isinstance(exc, ray.exceptions.RayActorError):
                self.pool(launch.policy.runner).discard(slot)  # the container is gone
        self._ended(launch, metas, crash, payload_ref, slot)

    async def _watch_stream(self, launch: Launch, refs: StreamRefs, slot: Slot | None) -> None:
        call_id = launch.calls[0].call_id
        metas: list[AttemptMeta] | None = None
        crash: RemoteFailure | None = None
        stream = self._streams.setdefault(call_id, CallStream())
        try:
            async for ref in refs:
                # Values are small as a rule (tokens, progress), and Ray inlines small
                # objects in the reply to their owner: looking costs no fetch.
                value = await ref
                if isinstance(value, StreamEnd):
                    metas = [value.meta]
                else:
                    stream.add(ref)
        except ray.exceptions.RayError as exc:  # killed (timeout, cancel) or crashed
            logger.info("%s ended in Ray: %s", launch.policy.label, exc)
            crash = RemoteFailure.from_ray_error(exc)
            if slot is not None and isinstance(exc, ray.exceptions.RayActorError):
                self.pool(launch.policy.runner).discard(slot)
        if metas is None and crash is None:  # ended with no word of how: it died
            crash = RemoteFailure.of_kind(FailureKind.CRASHED, "The generator's task ended early.")
        self._ended(launch, metas, crash, None, slot)

    def _ended(
        self,
        launch: Launch,
        metas: list[AttemptMeta] | None,
        crash: RemoteFailure | None,
        payload_ref: PayloadRef | None,
        slot: Slot | None,
    ) -> None:
        for call in launch.calls:
            if self._flying.get(call.call_id, (None,))[0] is launch:
                del self._flying[call.call_id]
        if slot is not None:
            self.pool(launch.policy.runner).release(slot)
        self._on_end(launch, metas, crash, payload_ref)

    # -- containers of @app.cls classes -------------------------------------------------

    def pool(self, loaded: LoadedFunction) -> Pool:
        container = loaded.options.container
        assert container is not None
        key = (loaded.key.deployment, container.class_name, loaded.key.version)
        pool = self._pools.get(key)
        if pool is None:
            held = held_resources(loaded.options.ray_task_options())
            pool = self._pools[key] = Pool(container, held)
        return pool

    def scale_down(self) -> None:
        """Stop containers idle past their scaledown_window (above min_containers),
        running their @exit methods first; and, while some have been idle a little
        (``Pool.reclaimable``), look whether other work waits for what they hold."""
        now = time.monotonic()
        reclaimable = False
        for key, pool in list(self._pools.items()):
            for slot in pool.idle_to_stop(now):
                self._stop(slot, pool.held)
            if pool.retired and not pool.slots:
                del self._pools[key]
            reclaimable = reclaimable or bool(pool.reclaimable(now))
        if reclaimable and self._reclaiming is None and now >= self._next_reclaim:
            self._next_reclaim = now + RECLAIM_CHECK_S
            self._reclaiming = asyncio.get_running_loop().create_task(self._reclaim())

    async def _reclaim(self) -> None:
        """Stop idle containers early when Ray has work it cannot place for want of
        what they hold (calls of other functions, other classes' containers)."""
        try:
            waiting, nodes = await asyncio.to_thread(pending_demand)
            now = time.monotonic()  # containers may have taken calls meanwhile
            idle = [(slot, pool) for pool in self._pools.values() for slot in pool.reclaimable(now)]
            chosen = to_reclaim(
                [(slot, pool.held) for slot, pool in idle],
                waiting,
                list(self._stopping.values()),
                nodes,
            )
            for slot, pool in idle:
                if slot in chosen:
                    pool.remove(slot)
                    self._stop(slot, pool.held)
            if chosen:
                logger.info("stopped %d idle containers early: work waits", len(chosen))
        except Exception:  # a look that failed is tried again at the next tick
            logger.exception("looking at Ray's pending demand failed")
        finally:
            self._reclaiming = None

    def _stop(self, slot: Slot, held: Resources) -> None:
        task = asyncio.get_running_loop().create_task(stop_container(slot.handle))
        self._stopping[task] = held
        task.add_done_callback(self._stopping.pop)
