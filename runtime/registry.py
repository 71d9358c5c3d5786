"""The call registry: the detached actor that owns every call.

A thin shell around the call book (runtime/book.py): it turns what happens in Ray into
the book's events and carries out the commands the book returns. It submits each
attempt's task itself (runtime/launcher.py), so it owns the result ``ObjectRef`` and
the result outlives the process that called ``.spawn()`` (Ray's ownership rule);
``get`` waits here and hands back the result's *ref*, never the value. Every accepted
call is in the journal (runtime/journal.py) before its id leaves, and every finished
one before anyone is told; a restarted registry replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Coroutine
from typing import Any

import psutil
import ray

from rayfn.runtime import kv
from rayfn.runtime.book import (
    Book,
    Command,
    Finished,
    Key,
    Kill,
    Launch,
    Policy,
    Pump,
    SetTimer,
    Warn,
)
from rayfn.runtime.constants import (
    CONTROL_RESTART_WAIT_S,
    DEFAULT_MAX_TOMBSTONES,
    EXPIRY_PAUSE_S,
    EXPIRY_SLICE,
    EXPIRY_TICK_S,
    KV_REGISTRY_EPOCH_PREFIX,
    REGISTRY_SHARD,
)
from rayfn.runtime.dispatch import LoadedFunction
from rayfn.runtime.executor import Finished as FinishedEarly
from rayfn.runtime.expiry import expires_at
from rayfn.runtime.ids import new_call_id
from rayfn.runtime.journal import Journal
from rayfn.runtime.launcher import Launcher
from rayfn.runtime.metrics import FLUSH_EVERY_S, CallMetrics
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

SpawnItem = tuple[str, str, bytes, str | None]  # (app, function, args blob, parent id)


class CallRegistry:
    """Owns calls: accepts them, runs them as Ray tasks, keeps results until expiry.
    Every start counts as a new *epoch* (kept in the GCS), written into the ids it
    issues; what earlier epochs accepted comes back from the journal."""

    def __init__(
        self, max_tombstones: int = DEFAULT_MAX_TOMBSTONES, shard: int = REGISTRY_SHARD
    ) -> None:
        self._shard = shard
        self._epoch = _next_epoch(shard)
        self._metrics = CallMetrics()
        self._book = book = Book(max_tombstones, self._metrics)
        self._journal = Journal(shard, book.take_changes, book.snapshot, book.has_changes)
        self._launcher = Launcher(self._launch_ended)
        self._functions: dict[Key, LoadedFunction] = {}  # current versions
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self._spawn_batches = 0  # round trips of coalesced spawns, for stats()
        self._background: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        started = time.monotonic()
        self._run(book.restore(self._journal.load(), time.time()))
        if book.calls:
            logger.warning(
                "registry shard %d (epoch %d) restored %d calls from its journal in %.2f s",
                shard, self._epoch, len(book.calls), time.monotonic() - started,
            )  # fmt: skip
        self._start(self._expire_forever())
        self._start(self._report_forever())

    # -- accepting calls ---------------------------------------------------------------

    async def spawn(self, app: str, function: str, args_blob: bytes) -> str | NotDeployed:
        return (await self.spawn_batch([(app, function, args_blob, None)]))[0]

    async def spawn_many(
        self, app: str, function: str, blobs: list[bytes], parent: str | None = None
    ) -> list[str] | NotDeployed:
        """Several calls of one function, in order (``parent``: spawned from it)."""
        answers = await self.spawn_batch([(app, function, blob, parent) for blob in blobs])
        failed = [a for a in answers if isinstance(a, NotDeployed)]
        return failed[0] if failed else answers

    async def spawn_batch(self, items: list[SpawnItem]) -> list[str | NotDeployed]:
        """Accept calls of any functions, in order: what a client's coalesced
        ``spawn()``s send (sdk/_spawner.py). Answers once they are journaled."""
        self._spawn_batches += 1
        answers, touched = await self._accept(items)
        for loaded in touched:
            self._loop.call_soon(self._pump, loaded)  # Ray takes them while we journal
        await self._journal.sync()
        return answers

    async def spawn_and_get(
        self, app: str, function: str, blob: bytes, parent: str | None, timeout: float | None
    ) -> tuple[str, CallOutcome] | NotDeployed:
        """``spawn`` and then ``get`` in one round trip: what ``f.spawn(...).get()``
        and ``f.remote(...)`` send when no other call of the client is ahead of it."""
        (answer,), touched = await self._accept([(app, function, blob, parent)])
        if isinstance(answer, NotDeployed):
            return answer
        self._pump(touched[0])
        await self._journal.sync()
        return answer, await self.get(answer, timeout)

    async def _accept(
        self, items: list[SpawnItem]
    ) -> tuple[list[str | NotDeployed], list[LoadedFunction]]:
        answers: list[str | NotDeployed] = []
        touched: dict[Key, LoadedFunction] = {}
        now = time.time()
        for app, function, blob, parent in items:
            loaded = touched.get((app, function)) or await self._function(app, function)
            if isinstance(loaded, NotDeployed):
                answers.append(loaded)
                continue
            touched[(app, function)] = loaded
            call_id = new_call_id(self._shard, self._epoch)
            ttl = loaded.options.result_ttl
            self._book.accept(call_id, (app, function), blob, ttl, now, parent)
            answers.append(call_id)
        return answers, list(touched.values())

    # -- answering -----------------------------------------------------------------------

    async def get(self, call_id: str, timeout: float | None) -> CallOutcome:
        """Wait up to ``timeout`` seconds (None: forever, 0: not at all) for a call to
        finish, then say where it stands; a finished call comes with its result ref."""
        call = self._book.calls.get(call_id)
        if call is not None and not call.status.is_terminal and timeout != 0:
            await self._wait(call_id, timeout)
        return await self._outcome(call_id)

    async def get_with_others(
        self, call_id: str, timeout: float | None, others: list[str]
    ) -> tuple[CallOutcome, dict[str, CallOutcome]]:
        """``get`` for one call, plus the answers for those of ``others`` that have
        finished by then: a client that spawned many calls fetches them in few trips."""
        outcome = await self.get(call_id, timeout)
        calls = self._book.calls
        done = [i for i in others if i in calls and calls[i].status.is_terminal]
        return outcome, {i: await self._outcome(i) for i in done}

    async def get_many(self, call_ids: list[str], timeout: float | None) -> list[CallOutcome]:
        """Wait until all have finished (or the timeout passes); answer for each."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for call_id in call_ids:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._is_open(call_id) and left != 0:
                await self._wait(call_id, left)
        return [await self._outcome(call_id) for call_id in call_ids]

    async def wait_any(self, call_ids: list[str], timeout: float | None) -> list[str]:
        """The ids among ``call_ids`` that have finished, waiting (up to ``timeout``)
        until at least one has."""
        if all(self._is_open(i) for i in call_ids) and call_ids and timeout != 0:
            waiters = [asyncio.ensure_future(self._wait(i, None)) for i in call_ids]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        await self._journal_if_busy()
        return [i for i in call_ids if not self._is_open(i)]

    async def describe(self, call_id: str) -> CallInfo | CallStatus | None:
        """The status record of a call; for one no longer tracked, EXPIRED or LOST
        (``Book.gone``), or None for an id never accepted."""
        outcome = await self._outcome(call_id)
        call = self._book.calls.get(call_id)
        return call.info() if call is not None else outcome.status

    async def call_graph(self, call_id: str) -> CallGraphNode | CallStatus | None:
        """A call with the calls spawned from inside it, recursively."""
        call = self._book.calls.get(call_id)
        return self._gone(call_id) if call is None else self._book.graph(call)

    async def list_calls(
        self,
        app: str | None = None,
        function: str | None = None,
        status: CallStatus | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[CallInfo]:
        """Calls newest first, filtered; ``before`` (a call id) continues a listing."""
        return self._book.listing(app, function, status, limit, before)

    async def _outcome(self, call_id: str) -> CallOutcome:
        book = self._book
        call = book.calls.get(call_id)
        if call is None:
            return CallOutcome(self._gone(call_id))
        if call.status.is_terminal:
            await self._journal_if_busy()  # never tell of an end the journal lacks
        if book.expire_if_due(call, time.time()):
            return CallOutcome(CallStatus.EXPIRED)
        deadline = expires_at(call.finished_at, call.result_ttl) if call.finished_at else None
        return CallOutcome(call.status, call.payload, call.failure, call.inline, deadline)

    def _gone(self, call_id: str) -> CallStatus | None:
        return self._book.gone(call_id, self._shard, self._epoch)

    def _is_open(self, call_id: str) -> bool:
        call = self._book.calls.get(call_id)
        return call is not None and not call.status.is_terminal

    async def _wait(self, call_id: str, timeout: float | None) -> None:
        event = self._waiters.setdefault(call_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def _journal_if_busy(self) -> None:
        if self._journal.busy():
            await self._journal.sync()

    # -- steering ------------------------------------------------------------------------

    async def cancel(self, call_id: str) -> CallInfo | CallStatus | None:
        """Cancel a call: a queued one never runs, a running one is stopped (its worker
        is killed), a finished one is left as it is."""
        self._run(self._book.cancel(call_id, time.time()))
        return await self.describe(call_id)

    async def attempt_started(
        self, call_id: str, attempt: int, started_at: float, finished: FinishedEarly = ()
    ) -> None:
        """Called by the executor once a call has run a little while: RUNNING, and the
        timeout clock starts. In a pack, ``finished`` are the pack's calls that ended
        before this one: recorded now, so a timeout or cancel cannot lose them."""
        now = time.time()
        for other_id, number, meta in finished:
            launch = self._launcher.launch_of(other_id)
            if launch is not None:
                self._run(self._book.finished_early(other_id, number, meta, launch.policy, now))
        launch = self._launcher.launch_of(call_id)
        if launch is not None:
            self._run(self._book.started(call_id, attempt, started_at, launch.policy))

    async def forget_app(self, app: str) -> None:
        """Drop cached code of ``app`` (redeployed or stopped). The redeploy rule: a
        call that has not started runs the version deployed when it starts, so its
        queues move to the new version now; its class containers go once idle."""
        for key in [k for k in self._functions if k[0] == app]:
            del self._functions[key]
        self._launcher.retire(app)
        for key, known in self._book.unload(app).items():
            await self._reload_and_pump(key, known)

    async def stats(self) -> dict[str, int]:
        book = self._book
        return {
            "tracked_calls": len(book.calls),
            "queued": sum(len(q) for q in book.queues.values()),
            "running": sum(book.running.values()),
            "expiry_queue": len(book.expiry),
            "tombstones": len(book.tombstones),
            "spawn_batches": self._spawn_batches,
            "packs": book.packs,
            **self._journal.size(),
        }

    # -- for benchmarks/bench.py: scale and expiry without running a million tasks --------

    async def debug_fill_finished(self, count: int, result_ttl: float) -> int:
        ids = [new_call_id(self._shard, self._epoch) for _ in range(count)]
        self._book.fill_synthetic(ids, result_ttl, time.time())
        return len(self._book.calls)

    async def debug_clear(self) -> None:
        self._book.clear_synthetic()
        gc.collect()

    async def debug_memory(self) -> dict[str, int]:
        gc.collect()
        return {"rss": psutil.Process().memory_info().rss, "tracked_calls": len(self._book.calls)}

    def expire_due_calls(self, now: float, limit: int | None = None) -> int:
        count = self._book.expire_due(now, limit)
        self._journal.nudge()
        return count

    # -- carrying out the book's commands ------------------------------------------------

    def _run(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, Launch):
                failure = self._launcher.launch(command)
                if failure is not None:
                    self._run(self._book.launch_failed(command, failure, time.time()))
            elif isinstance(command, SetTimer):
                timer = self._timers.pop(command.call_id, None)
                if timer is not None:
                    timer.cancel()
                if command.at is not None:
                    delay = max(0.0, command.at - time.time())
                    self._timers[command.call_id] = self._loop.call_later(
                        delay, self._timer_fired, command.call_id
                    )
            elif isinstance(command, Finished):
                event = self._waiters.pop(command.call_id, None)
                if event is not None:
                    event.set()
            elif isinstance(command, Kill):
                self._launcher.kill(command.call_id)
            elif isinstance(command, Pump):
                self._pump_latest(command.key, command.known)
            elif isinstance(command, Warn):
                logger.warning(command.message)
        self._journal.nudge()

    def _timer_fired(self, call_id: str) -> None:
        self._timers.pop(call_id, None)
        self._run(self._book.timer_fired(call_id))

    def _launch_ended(
        self,
        launch: Launch,
        metas: list[AttemptMeta] | None,
        crash: RemoteFailure | None,
        payload: Any,
    ) -> None:
        self._run(self._book.launch_ended(launch, metas, crash, payload, time.time()))

    def _pump(self, loaded: LoadedFunction) -> None:
        """Launch queued calls of ``loaded``; for a class's method, of every method of
        its class (a freed container may serve any of them)."""
        now = time.time()
        container = loaded.options.container
        if container is None:
            self._run(self._book.dispatch(loaded.policy, now))
            return
        for other in {f.key: f for f in [loaded, *self._functions.values()]}.values():
            spec = other.options.container
            if other.key[0] == loaded.key[0] and spec and spec.class_name == container.class_name:
                free = self._launcher.pool(other).capacity()
                self._run(self._book.dispatch(other.policy, now, free))

    def _pump_latest(self, key: Key, known: Policy | None) -> None:
        """Pump ``key``'s function with its current version: the cached one, else
        (redeployed meanwhile) the one the control actor has now, else (its app was
        stopped) ``known``."""
        current = self._functions.get(key)
        if current is None:
            self._start(self._reload_and_pump(key, known))
        else:
            self._pump(current)

    async def _reload_and_pump(self, key: Key, known: Policy | None) -> None:
        loaded = await self._function(*key)
        if not isinstance(loaded, NotDeployed):
            self._pump(loaded)
        elif known is not None:
            self._pump(known.runner)
        else:  # restored calls of an app stopped meanwhile: nothing can run them
            failure = RemoteFailure.of_kind(FailureKind.NOT_STARTED, loaded.message)
            self._run(self._book.drop_queue(key, failure, time.time()))

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
        self._book.load(loaded.policy)
        if options.container is not None:  # keep min_containers warm from now on
            self._launcher.pool(loaded).warm(loaded.start_container)
        return loaded

    # -- background loops ----------------------------------------------------------------

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:
                book = self._book
                queued = {key: len(queue) for key, queue in book.queues.items()}
                self._metrics.flush(queued, {k: n for k, n in book.running.items() if n})
                self._launcher.scale_down()
            except Exception:  # metrics must never take the registry down
                logger.exception("metrics flush or scale-down failed")

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
    previous = kv.get(key)
    epoch = int(previous) + 1 if previous else 1
    kv.put(key, str(epoch).encode())
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
