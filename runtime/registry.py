"""The call registry: the detached actor that owns every call.

A thin shell around the call book (runtime/book.py): it turns what happens in Ray into
the book's events and carries out the commands the book returns. It submits each
attempt's task itself (runtime/launcher.py), so it owns the result ``ObjectRef`` and
the result outlives the process that called ``.spawn()`` (Ray's ownership rule);
``get`` hands back the result's *ref*, never the value. Every accepted call is in the
journal (runtime/journal.py) before its id leaves, every finished one before anyone is
told; a restarted registry replays it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Coroutine
from typing import Any

import psutil

from rayfn.records import (
    CallGraphNode,
    CallInfo,
    CallStatus,
    DeliveryInfo,
    FailureKind,
    Progress,
)
from rayfn.runtime import code
from rayfn.runtime import commands as events
from rayfn.runtime.answers import Answers
from rayfn.runtime.book import Book
from rayfn.runtime.commands import Command, Policy
from rayfn.runtime.constants import (
    DEFAULT_MAX_TOMBSTONES,
    EXPIRY_PAUSE_S,
    EXPIRY_SLICE,
    EXPIRY_TICK_S,
    REGISTRY_SHARD,
    STREAM_KEEP_S,
)
from rayfn.runtime.dispatch import LoadedFunction
from rayfn.runtime.figures import FIGURES_FRESH_S, WINDOW_S, figures
from rayfn.runtime.identity import FunctionKey as Key
from rayfn.runtime.ids import new_call_id
from rayfn.runtime.journal import Journal, next_epoch
from rayfn.runtime.launcher import Launcher
from rayfn.runtime.loops import tick_forever
from rayfn.runtime.metrics import FLUSH_EVERY_S, CallMetrics
from rayfn.runtime.protocol import (
    CallOptions,
    CallQuery,
    Conflict,
    Polled,
    PollMode,
    StreamChunk,
    Submission,
    Submitted,
)
from rayfn.runtime.protocol import Finished as FinishedEarly
from rayfn.runtime.records import AttemptMeta, NotDeployed, RemoteFailure
from rayfn.runtime.streams import CallStream
from rayfn.runtime.webhooks import Sender

logger = logging.getLogger(__name__)


class CallRegistry:
    """Owns calls: accepts them, runs them as Ray tasks, keeps results until expiry.
    Every start counts as a new *epoch* (kept in the GCS), written into the ids it
    issues; what earlier epochs accepted comes back from the journal."""

    def __init__(
        self, max_tombstones: int = DEFAULT_MAX_TOMBSTONES, shard: int = REGISTRY_SHARD
    ) -> None:
        self._shard = shard
        self._epoch = next_epoch(shard)
        self._metrics = CallMetrics()
        self._book = book = Book(max_tombstones, self._metrics)
        self._journal = Journal(shard, book)
        self._streams: dict[str, CallStream] = {}  # generator calls' values
        self._launcher = Launcher(self._launch_ended, self._streams)
        self._answers = Answers(book, self._journal, shard, self._epoch)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._pump_timers: dict[Key, asyncio.TimerHandle] = {}  # batches filling up
        self._webhooks = Sender(code.get_secret)
        self._figures: dict[float, tuple[float, dict[str, Any]]] = {}  # window -> (at, them)
        self._spawn_batches = 0  # round trips of coalesced spawns, for stats()
        self._background: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._run(book.restore(self._journal.load(), time.time()))
        if book.calls:
            logger.warning("registry shard %d restored %d calls", shard, len(book.calls))
        self._start(tick_forever(EXPIRY_TICK_S, self._tick, "expiry, metrics or scale-down"))

    # -- accepting calls ---------------------------------------------------------------

    async def submit(
        self,
        submissions: list[Submission],
        token: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Submitted:
        """Accept calls of any functions, in order, answering once they are journaled:
        what a client's coalesced ``spawn()``s send (sdk/_spawner.py). A ``token`` makes
        it safe to send again: the same token gets the same ids. With ``wait``, also
        wait up to ``timeout`` for the first call to end and answer its outcome: one
        round trip for ``f.remote(...)`` and for ``f.spawn(...).get()`` when no other
        call of the client is ahead of it."""
        if not wait:
            self._spawn_batches += 1
        answers, touched = await self._accept(submissions, token)
        first = answers[0] if answers else None
        if wait and isinstance(first, str):
            # Nobody holds the id before the answer: the call's acceptance is
            # journaled with what the answer tells (for a short call, its end), in
            # one write; the rest of the batch before the answer too.
            for loaded in touched:
                self._pump(loaded)
            polled = await self._answers.poll([first], timeout, PollMode.FIRST)
            await self._journal.sync()
            return Submitted(answers, polled[first])
        for loaded in touched:
            self._loop.call_soon(self._pump, loaded)  # Ray takes them while we journal
        await self._journal.sync()
        return Submitted(answers)

    async def _accept(
        self, submissions: list[Submission], token: str | None
    ) -> tuple[list[str | NotDeployed | Conflict], list[LoadedFunction]]:
        answers: list[str | NotDeployed | Conflict] = []
        touched: dict[Key, LoadedFunction] = {}
        now = time.time()
        # Sent before, and the answer lost with a registry that restarted: same ids.
        replay = iter(self._book.batches.get(token, ()) if token else ())
        for target, function, blob, parent, *more in submissions:
            options = more[0] if more else None  # a client from before call options
            key = Key(target, function)
            loaded = touched.get(key) or await self._launcher.function(key)
            if isinstance(loaded, NotDeployed):
                answers.append(loaded)
                continue
            touched[key] = loaded
            hook = loaded.options.webhook  # the function's, unless the call has its own
            if hook is not None and (options is None or options.webhook is None):
                options = (options or CallOptions())._replace(webhook=hook)
            if options is not None and options.idempotency_key is not None:
                known = self._book.keyed(key, options.idempotency_key, blob)
                if known is not None:  # the same call again: its id (or the conflict)
                    answers.append(known)
                    continue
            call_id = next(replay, None)
            if call_id is None:
                call_id = new_call_id(self._shard, self._epoch)
                ttl = loaded.options.result_ttl
                timed = self._book.accept(call_id, key, blob, ttl, now, parent, token, options)
                if timed:  # a scheduled call's timer, or one that expired at once
                    self._run(timed)
                if loaded.options.generator:
                    self._streams[call_id] = CallStream()
            answers.append(call_id)
        return answers, list(touched.values())

    # -- answering (runtime/answers.py) -----------------------------------------------

    async def poll(self, call_ids: list[str], timeout: float | None, mode: PollMode) -> Polled:
        return await self._answers.poll(call_ids, timeout, mode)

    async def describe(self, call_id: str) -> CallInfo | CallStatus | None:
        return await self._answers.describe(call_id)

    async def stream(self, call_id: str, start: int, timeout: float) -> StreamChunk:
        """A generator call's values from number ``start`` on, as refs, waiting up to
        ``timeout`` for one; once it ended and all were read, its outcome (and the
        stream is dropped: read to its end)."""
        stream = self._streams.get(call_id)
        if stream is None:
            return StreamChunk([], gone=True)
        await stream.wait_past(start, timeout)
        items = stream.items[start:]
        if items or not stream.ended:
            return StreamChunk(items)
        polled = await self._answers.poll([call_id], 0, PollMode.FIRST)
        if self._streams.get(call_id) is stream:
            del self._streams[call_id]
        return StreamChunk([], polled[call_id])

    async def call_graph(self, call_id: str) -> CallGraphNode | CallStatus | None:
        return self._answers.call_graph(call_id)

    async def list_calls(self, query: CallQuery) -> list[CallInfo]:
        """Calls newest first, filtered; ``before`` (a call id) continues a listing."""
        return self._book.listing(query)

    # -- steering ------------------------------------------------------------------------

    async def cancel(self, call_id: str) -> CallInfo | CallStatus | None:
        """Cancel a call: a queued one never runs, a running one is stopped (its worker
        is killed), a finished one is left as it is."""
        self._run(self._book.cancel(call_id, time.time()))
        return await self._answers.describe(call_id)

    async def deliveries(self, call_id: str) -> list[DeliveryInfo] | CallStatus | None:
        """The tries at delivering a call's end to its webhook, oldest first; for an
        id it does not track, what ``describe`` answers."""
        call = self._book.calls.get(call_id)
        if call is None:
            answer = await self._answers.describe(call_id)
            return None if isinstance(answer, CallInfo) else answer
        return [] if call.webhook is None else list(call.webhook.attempts)

    async def redeliver(self, call_id: str) -> list[DeliveryInfo] | CallStatus | str | None:
        """Deliver a finished call's end to its webhook again, now; its tries so far,
        or why not (a sentence), or what ``describe`` answers for an unknown id."""
        commands, refusal = self._book.redeliver(call_id, time.time())
        if refusal == "unknown":
            return await self.deliveries(call_id)
        if refusal is not None:
            return refusal
        self._run(commands)
        return await self.deliveries(call_id)

    async def requeue(self, call_id: str) -> CallInfo | CallStatus | str | None:
        """Run a dead letter again under its id; its status record, or why not (a
        sentence), or what ``describe`` answers for an id it does not track."""
        commands, refusal = self._book.requeue(call_id, time.time())
        if refusal == "unknown":
            return await self._answers.describe(call_id)
        if refusal is not None:
            return refusal
        self._run(commands)
        return await self._answers.describe(call_id)

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

    async def set_progress(self, call_id: str, attempt: int, progress: Progress) -> None:
        """A running call's progress (``rayfn.set_progress``; each worker sends at
        most ``PROGRESS_EVERY_S`` apart, fire and forget)."""
        self._book.progress(call_id, attempt, progress)
        self._journal.nudge()

    async def forget_app(self, app: str, cancel_why: str | None = None) -> int:
        """Drop cached code of ``app`` (redeployed or stopped; with ``cancel_why``, an
        ephemeral app ended: its unfinished calls are cancelled; returns how many).
        A call that has not started runs the version deployed when it starts, so its
        queues move to the new version now; its class containers go once idle."""
        commands, cancelled = self._book.cancel_app(app, cancel_why, time.time())
        self._run(commands)
        stale = self._launcher.forget(app)
        for key in self._book.forget(app):
            known = stale.get(key)
            await self._reload_and_pump(key, known.policy if known else None)
        return cancelled

    async def figures(self, window: float = WINDOW_S) -> dict[str, Any]:
        """The console's figures (runtime/figures.py); reused for FIGURES_FRESH_S, so
        open consoles cost one walk over the calls (160 ms at 100,000) that often."""
        now = time.time()
        cached = self._figures.get(window)
        if cached is not None and now - cached[0] < FIGURES_FRESH_S:
            return cached[1]
        book = self._book
        queued = {key: len(queue) for key, queue in book.queues.items()}
        running = {key: n for key, n in book.running.items() if n}
        found = figures(book.calls.values(), queued, running, now, window)
        self._figures = {window: (now, found)}
        return found

    async def stats(self, app: str = "") -> dict[str, int]:
        """Counts for the dashboard and tests; ``unfinished``: of ``app``'s calls."""
        counts = {"epoch": self._epoch, "spawn_batches": self._spawn_batches}
        counts["unfinished"] = self._book.unfinished[app]
        return {**self._book.stats(), **counts, **self._journal.size()}

    # -- for benchmarks/bench.py: scale and expiry without running a million tasks --------

    async def debug_fill_finished(self, count: int, result_ttl: float) -> int:
        ids = [new_call_id(self._shard, self._epoch) for _ in range(count)]
        self._book.fill_synthetic(ids, result_ttl, time.time())
        return len(self._book.calls)

    async def debug_clear(self) -> None:
        self._book.clear_synthetic()
        gc.collect()

    async def debug_compact(self) -> None:
        await self._journal.compact()

    async def debug_memory(self) -> dict[str, int]:
        gc.collect()
        me = psutil.Process()
        return {"rss": me.memory_info().rss, "tracked_calls": len(self._book.calls), "pid": me.pid}

    # -- carrying out the book's commands ------------------------------------------------

    def _run(self, commands: list[Command]) -> None:
        for command in commands:
            match command:
                case events.Launch():
                    launched = self._launcher.launch(command)
                    if isinstance(launched, RemoteFailure):
                        self._run(self._book.launch_failed(command, launched, time.time()))
                    else:
                        self._book.handed_over(command, launched)
                case events.SetTimer(call_id, at):
                    timer = self._timers.pop(call_id, None)
                    if timer is not None:
                        timer.cancel()
                    if at is not None:
                        delay = max(0.0, at - time.time())
                        self._timers[call_id] = self._loop.call_later(
                            delay, self._timer_fired, call_id
                        )
                case events.Finished(call_id):
                    self._answers.wake(call_id)
                    stream = self._streams.get(call_id)
                    if stream is not None:
                        stream.end()
                        self._loop.call_later(STREAM_KEEP_S, self._drop_stream, call_id, stream)
                case events.Kill(call_id):
                    self._launcher.kill(call_id)
                case events.Pump(key, known):
                    self._pump_latest(key, known)
                case events.PumpAt(key, at, known):
                    if key not in self._pump_timers:  # one wait per function at a time
                        delay = max(0.0, at - time.time())
                        self._pump_timers[key] = self._loop.call_later(
                            delay, self._pump_timer_fired, key, known
                        )
                case events.Deliver(call_id):
                    self._start(self._deliver(call_id))
                case events.Warn(message):
                    logger.warning(message)
        self._journal.nudge()

    async def _deliver(self, call_id: str) -> None:
        """One try at posting a call's end to its webhook."""
        found = self._book.delivery(call_id)
        if found is None:
            return
        target, delivery_id, attempt, info = found
        async with self._webhooks.slots:
            tried = await self._webhooks.post(target, delivery_id, attempt, info)
        self._run(self._book.delivered(call_id, tried, time.time()))

    def _launch_ended(
        self,
        launch: events.Launch,
        metas: list[AttemptMeta] | None,
        crash: RemoteFailure | None,
        payload: Any,
    ) -> None:
        self._run(self._book.launch_ended(launch, metas, crash, payload, time.time()))

    def _drop_stream(self, call_id: str, stream: CallStream) -> None:
        if self._streams.get(call_id) is stream:  # not read to its end in time
            del self._streams[call_id]

    def _pump_timer_fired(self, key: Key, known: Policy | None) -> None:
        del self._pump_timers[key]
        self._pump_latest(key, known)

    def _timer_fired(self, call_id: str) -> None:
        self._timers.pop(call_id, None)
        self._run(self._book.timer_fired(call_id, time.time()))

    def _pump(self, loaded: LoadedFunction) -> None:
        now = time.time()
        for policy, free in self._launcher.pumpable(loaded):
            self._run(self._book.dispatch(policy, now, free))

    def _pump_latest(self, key: Key, known: Policy | None) -> None:
        """Pump ``key``'s function with its current version: the cached one, else
        (redeployed meanwhile) the one the control actor has now, else (its app was
        stopped) ``known``."""
        current = self._launcher.functions.get(key)
        if current is None:
            self._start(self._reload_and_pump(key, known))
        else:
            self._pump(current)

    async def _reload_and_pump(self, key: Key, known: Policy | None) -> None:
        loaded = await self._launcher.function(key)
        if not isinstance(loaded, NotDeployed):
            self._pump(loaded)
        elif known is not None:
            self._pump(known.runner)
        else:  # restored calls of an app stopped meanwhile: nothing can run them
            failure = RemoteFailure.of_kind(FailureKind.NOT_STARTED, loaded.message())
            self._run(self._book.drop_queue(key, failure, time.time()))

    # -- background loops ----------------------------------------------------------------

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _tick(self, ticks: int) -> None:
        # A burst (100k results of one batch expiring together) goes in slices,
        # pausing between them, so spawn and get never wait behind it.
        while self._book.expire_due(time.time(), EXPIRY_SLICE) == EXPIRY_SLICE:
            await asyncio.sleep(EXPIRY_PAUSE_S)
        self._journal.nudge()  # the expired calls leave the journal
        self._launcher.scale_down()  # every tick: idle containers may be wanted
        if ticks % round(FLUSH_EVERY_S / EXPIRY_TICK_S) == 0:
            queued = {key: len(queue) for key, queue in self._book.queues.items()}
            running = {k: n for k, n in self._book.running.items() if n}
            self._metrics.flush(queued, running)
