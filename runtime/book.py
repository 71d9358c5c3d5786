"""The life of every call, as a state machine with no Ray and no clock.

The registry actor (runtime/registry.py) turns what happens in Ray into events here
(accepted, launched task ended, attempt started, timer fired, cancel, expiry due) and
carries out the commands they return (launch these calls, set or stop a call's timer,
kill an attempt, wake a call's waiters, pump a queue). The book owns the queues, the
attempts, retries and backoff, timeouts, ``max_containers`` order, cancel in every
state, expiry and tombstones, and the pack requeue. Every change to a call's durable
state marks it dirty; the registry journals the dirty calls (runtime/journal.py)
before it answers anyone, and a new book is rebuilt from the journal with
``restore``.
"""

from __future__ import annotations

import collections
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from rayfn.records import (
    FAILURES,
    CallGraphNode,
    CallInfo,
    CallStatus,
    DeliveryInfo,
    FailureKind,
    Progress,
)
from rayfn.runtime.calls import INTERRUPTED, Attempt, Call, CallQueue, Timer
from rayfn.runtime.commands import (
    Command,
    Deliver,
    Finished,
    Kill,
    Launch,
    LaunchItem,
    Policy,
    Pump,
    PumpAt,
    SetTimer,
    Warn,
)
from rayfn.runtime.expiry import ExpiryQueue, Tombstones, expires_at
from rayfn.runtime.identity import FunctionKey as Key
from rayfn.runtime.identity import app_of
from rayfn.runtime.ids import parse_call_id
from rayfn.runtime.packing import PackPolicy
from rayfn.runtime.protocol import CallOptions, CallQuery, Conflict
from rayfn.runtime.records import AttemptMeta, RemoteFailure
from rayfn.runtime.resubmits import Resubmits, digest
from rayfn.runtime.webhooks import Deliveries, WebhookTarget

# The counter a call's terminal status bumps (runtime/metrics.py).
_EVENT = {
    CallStatus.SUCCEEDED: "succeeded",
    CallStatus.FAILED: "failed",
    CallStatus.TIMED_OUT: "timed_out",
    CallStatus.CANCELLED: "cancelled",
    CallStatus.EXPIRED_UNSTARTED: "expired_unstarted",
}

# How much of a call graph one answer carries.
_MAX_GRAPH_DEPTH = 16
_MAX_GRAPH_CHILDREN = 1000

SYNTHETIC = "synthetic"  # the function name of benchmark filler calls: never journaled

# Dead letters: calls whose attempts (and retries) are used up; `requeue` runs one again.
DEAD = frozenset({CallStatus.FAILED, CallStatus.TIMED_OUT})


class Counter(Protocol):
    """Where the book counts what happens (runtime/metrics.py's CallMetrics)."""

    def count(self, event: str, app: str, function: str, n: int = 1) -> None: ...
    def queue_wait(self, app: str, function: str, seconds: float) -> None: ...
    def run_time(self, app: str, function: str, seconds: float) -> None: ...


class _NoCounter:
    def count(self, event: str, app: str, function: str, n: int = 1) -> None:
        pass

    def queue_wait(self, app: str, function: str, seconds: float) -> None:
        pass

    def run_time(self, app: str, function: str, seconds: float) -> None:
        pass


class Book:
    """Every tracked call, its queue and its attempts."""

    def __init__(self, max_tombstones: int, counter: Counter | None = None) -> None:
        self.calls: dict[str, Call] = {}  # in creation order: listings walk it backwards
        self.children: defaultdict[str, list[str]] = defaultdict(list)
        self.queues: defaultdict[Key, CallQueue] = defaultdict(CallQueue)
        self.running: defaultdict[Key, int] = defaultdict(int)  # launched tasks
        self.unfinished: collections.Counter[str] = collections.Counter()  # per app, not ended
        self.launched: dict[Key, Policy] = {}  # the version each function last ran
        # Spawn tokens and idempotency keys: a submission sent again, the same call (the
        # keys are kept past a call's expiry, as its tombstone is).
        self.resubmits = Resubmits()
        self.packing = PackPolicy()
        self.expiry = ExpiryQueue()
        self.tombstones = Tombstones(max_tombstones)
        self.packs = 0  # tasks that ran several calls, for stats()
        self._counter: Counter = counter or _NoCounter()
        self._dirty: dict[str, None] = {}  # calls changed since the last take_changes
        self._removed: list[str] = []  # calls expired since then

    # -- functions ----------------------------------------------------------------------

    def forget(self, app: str) -> list[Key]:
        """``app`` was redeployed or stopped: its versions' figures are done with.
        Returns its functions with calls queued (to pump with the new version)."""
        self.packing.forget(app)
        return [k for k, q in self.queues.items() if k[0] == app and q]

    def drop_queue(self, key: Key, failure: RemoteFailure, now: float) -> list[Command]:
        """End the queued calls of a function no version of which can run any more."""
        out: list[Command] = []
        for call in self.queues.pop(key, CallQueue()):
            if call.status is CallStatus.QUEUED:
                out += self._finish(call, CallStatus.FAILED, now, failure)
        return out

    # -- accepting ----------------------------------------------------------------------

    def keyed(self, key: Key, idempotency_key: str, args: bytes) -> str | Conflict | None:
        """The call an idempotency key already names for this function (while it or
        its tombstone is known): its id; ``Conflict`` if it was made with other
        arguments; None if the key is new."""
        return self.resubmits.keyed(key, idempotency_key, args)

    @property
    def batches(self) -> OrderedDict[str, list[str]]:
        """Spawn token -> the ids its round trip got: sent again, the same ids."""
        return self.resubmits.tokens

    def accept(
        self,
        call_id: str,
        key: Key,
        args: bytes,
        result_ttl: float,
        now: float,
        parent: str | None = None,
        token: str | None = None,
        options: CallOptions | None = None,
    ) -> list[Command]:
        """A new call, QUEUED at the back of its function's queue (of its priority),
        or SCHEDULED until its ``delay``/``at``; ``token`` names the spawn round trip
        that sent it (see ``batches``); ``options``, its own (an idempotency key a
        later submission of the same call gives: see ``keyed``)."""
        call = Call(call_id, key[0], key[1], args, result_ttl, now, parent, token)
        self.calls[call_id] = call
        if token is not None:
            self.resubmits.sent(token, call_id)
        if parent is not None and parent in self.calls:
            self.children[parent].append(call_id)
        self.unfinished[key[0]] += 1
        self._dirty[call_id] = None
        self._counter.count("spawned", key[0], key[1])
        if options is None:
            self.queues[key].append(call)
            return []
        if options.idempotency_key is not None:
            call.idempotency = (options.idempotency_key, digest(args))
            self.resubmits.name(key, call.idempotency, call_id)
        call.priority = options.priority
        if options.webhook is not None:
            call.webhook = Deliveries(options.webhook)
        if options.expires_in is not None:
            call.start_by = now + options.expires_in
        run_at = max(now + (options.delay or 0.0), options.at or 0.0)
        if run_at > now:
            call.status = CallStatus.SCHEDULED
            call.scheduled_for = run_at
            return [self._set_timer(call, Timer.START, run_at)]
        return self._enqueue(call, now)

    def _enqueue(self, call: Call, now: float) -> list[Command]:
        """Put a new call in its function's queue (unless its ``start_by`` passed:
        it ends there); a call with a ``start_by`` ends by its timer if it is still
        queued then."""
        if call.start_by is not None and now >= call.start_by:
            return self._expire_unstarted(call, now)
        call.status = CallStatus.QUEUED
        self.queues[call.key].append(call)
        if call.start_by is None:
            return []
        return [self._set_timer(call, Timer.START_BY, call.start_by)]

    def _expire_unstarted(self, call: Call, now: float) -> list[Command]:
        """End a call not started before its ``start_by``: it never runs."""
        failure = RemoteFailure.of_kind(
            FailureKind.EXPIRED_UNSTARTED,
            "The call was not started before its expires_in deadline: it did not run.",
        )
        return self._finish(call, CallStatus.EXPIRED_UNSTARTED, now, failure)

    # -- launching ----------------------------------------------------------------------

    def dispatch(self, policy: Policy, now: float, free: int | None = None) -> list[Command]:
        """Launch queued calls of ``policy``'s function while it is under
        ``max_containers`` (a class's method: while its pool has ``free`` places)."""
        key = policy.key
        queue = self.queues.get(key)
        out: list[Command] = []
        if queue is None:
            return out
        limit = policy.max_containers
        while queue:
            if policy.pooled:  # the pool's free places (None: it grows without bound)
                if free is not None and free <= 0:
                    break
                size = 1
            elif limit is not None and self.running[key] >= limit:
                break
            else:
                size = self.packing.size(policy.version, policy.can_pack, len(queue))
            if policy.batch:  # @batched: a full batch, or what waited batch_wait
                fill_by = queue.first().created_at + policy.batch_wait
                if len(queue) < policy.batch and fill_by > now:
                    out.append(PumpAt(key, fill_by, policy))
                    break
                size = policy.batch
            batch: list[Call] = []
            while queue and len(batch) < size:
                call = queue.popleft()
                if call.status is not CallStatus.QUEUED:  # a cancelled one is skipped here
                    continue
                if call.start_by is not None and now >= call.start_by and not call.has_started:
                    out += self._expire_unstarted(call, now)
                else:
                    batch.append(call)
            if batch:
                out += self._launch(batch, policy, now)
                free = None if free is None else free - 1
        if not queue:
            del self.queues[key]
        return out

    def _launch(self, calls: list[Call], policy: Policy, now: float) -> list[Command]:
        packed = len(calls) > 1
        out: list[Command] = []
        items = []
        for call in calls:
            number = len(call.attempts) + 1
            call.attempts.append(Attempt(number, now))
            call.status = CallStatus.PENDING
            call.packed = packed
            call.interrupt = None
            start_by = None if call.start_by is None or call.has_started else call.start_by
            items.append(LaunchItem(call.call_id, number, call.args or b"", start_by))
            self._dirty[call.call_id] = None
            if policy.startup_timeout is not None:  # never packed (Policy.can_pack)
                out.append(self._set_timer(call, Timer.STARTUP, now + policy.startup_timeout))
        self.running[policy.key] += 1
        self.launched[policy.key] = policy
        self.packs += packed
        out.insert(0, Launch(policy, tuple(items)))
        return out

    def handed_over(self, launch: Launch, task_id: str) -> None:
        """Ray took ``launch`` as the task ``task_id``: noted on each call's attempt."""
        for call_id, number, *_ in launch.calls:
            call = self.calls.get(call_id)
            if call is not None and len(call.attempts) >= number:
                call.attempts[number - 1].task_id = task_id
                self._dirty[call_id] = None

    def launch_failed(self, launch: Launch, failure: RemoteFailure, now: float) -> list[Command]:
        """Ray refused the task outright (e.g. resources no node type has)."""
        self.running[launch.policy.key] -= 1
        out: list[Command] = []
        for call_id, number, *_ in launch.calls:
            call = self.calls.get(call_id)
            if call is not None and call.is_open(number):
                call.attempts[-1].end(failure.kind.value, failure.summary, now)
                out += self._finish(call, CallStatus.FAILED, now, failure)
        return out

    # -- attempts -----------------------------------------------------------------------

    def started(
        self, call_id: str, attempt: int, started_at: float, policy: Policy
    ) -> list[Command]:
        """The executor says the call has run a little while: RUNNING, and the timeout
        clock starts from ``started_at``."""
        call = self.calls.get(call_id)
        if call is None or call.status is not CallStatus.PENDING or len(call.attempts) != attempt:
            return []  # stale: that attempt already ended, or the call did
        call.attempts[-1].started_at = started_at
        call.status = CallStatus.RUNNING
        if policy.timeout is None:
            return [self._stop_timer(call)] if call.timer else []
        return [self._set_timer(call, Timer.TIMEOUT, started_at + policy.timeout)]

    def requeue(self, call_id: str, now: float) -> tuple[list[Command], str | None]:
        """Run a dead letter (FAILED or TIMED_OUT) again under its id: QUEUED at the
        back of its function's queue, its earlier attempts kept in its history but not
        counted by its retries. The commands, or why it cannot be requeued."""
        call = self.calls.get(call_id)
        if call is None:
            return [], "unknown"
        if call.status not in DEAD:
            return [], f"it is {call.status.value}: only FAILED or TIMED_OUT calls are requeued"
        if call.args is None:
            return [], "its arguments are no longer kept"
        self.unfinished[call.app] += 1
        call.status = CallStatus.QUEUED
        call.finished_at = call.failure = None
        call.inline, call.large, call.payload, call.progress = None, False, None, None
        call.retry_base = len(call.attempts)
        call.start_by = None  # run again on purpose: no deadline left to keep
        call.journaled = False  # its next record carries its args again
        self.queues[call.key].append(call)
        self._dirty[call_id] = None
        self._counter.count("spawned", call.app, call.function)
        return [Pump(call.key, self.launched.get(call.key))], None

    def progress(self, call_id: str, attempt: int, progress: Progress) -> None:
        """A running call said how far it is (``rayfn.set_progress``): kept, and
        journaled with its next change, while that attempt is its latest and on."""
        call = self.calls.get(call_id)
        if call is None or not call.is_open(attempt):
            return  # stale: that attempt ended, or the call did
        call.progress = progress
        self._dirty[call_id] = None

    def finished_early(
        self, call_id: str, attempt: int, meta: AttemptMeta, policy: Policy, now: float
    ) -> list[Command]:
        """A packed call its pack reported finished before its task ended: recorded
        now, so a timeout or cancel that takes the pack down cannot lose it."""
        call = self.calls.get(call_id)
        if call is None or not call.is_open(attempt):
            return []
        return self._record(call, attempt, meta, None, policy, now)

    def launch_ended(
        self,
        launch: Launch,
        metas: list[AttemptMeta] | None,
        crash: RemoteFailure | None,
        payload: Any,
        now: float,
    ) -> list[Command]:
        """The task of ``launch`` ended: how each of its calls went (``metas``, in
        order; a pack may have stopped early), or Ray's ``crash`` if it died (killed
        for a timeout or cancel, or crashed). ``payload`` is the large result of the
        last call that ran."""
        policy = launch.policy
        self.running[policy.key] -= 1
        packed = len(launch.calls) > 1
        out: list[Command] = [Pump(policy.key, policy)]
        unstarted: list[Call] = []
        interrupted = False
        for index, (call_id, number, *_) in enumerate(launch.calls):
            call = self.calls.get(call_id)
            if call is None or not call.is_open(number):
                continue  # recorded from a report, or cancelled, or expired since
            call.packed = False
            if metas is not None and index < len(metas):
                mine = payload if index == len(metas) - 1 else None
                out += self._record(call, number, metas[index], mine, policy, now)
            elif metas is None and (
                not packed
                or policy.batch  # a batch's calls run together: none is left unstarted
                or call.interrupt is not None
                or call.status is CallStatus.RUNNING
            ):
                # Timed out or cancelled, or the one running when the worker died.
                interrupted = interrupted or call.interrupt is not None
                failure = self._interrupted(call, policy, crash)
                call.attempts[-1].end(failure.kind.value, failure.summary, now)
                out += self._failed(call, policy, failure, now)
            else:
                unstarted.append(call)
        if packed and not policy.batch and metas is None and not interrupted:
            self.packing.crashed(policy.version)
            out.append(
                Warn(
                    f"a pack of {policy.label} died ({crash and crash.summary}): "
                    "its calls run one per task from now on"
                )
            )
        # Calls the pack never got to go back first in line, in order: their attempt
        # did not happen.
        for call in reversed(unstarted):
            call.attempts.pop()
            call.status = CallStatus.QUEUED
            call.packed = False
            self.queues[call.key].appendleft(call)
            self._dirty[call.call_id] = None
        return out

    def _record(
        self,
        call: Call,
        number: int,
        meta: AttemptMeta,
        payload: Any,
        policy: Policy,
        now: float,
    ) -> list[Command]:
        out = [self._stop_timer(call)] if call.timer else []
        attempt = call.attempts[number - 1]
        if meta.failure is not None and meta.failure.kind is FailureKind.EXPIRED_UNSTARTED:
            attempt.end(meta.failure.kind.value, meta.failure.summary, meta.finished_at)
            return out + self._finish(call, CallStatus.EXPIRED_UNSTARTED, now, meta.failure)
        attempt.started_at = attempt.started_at or meta.started_at
        if number == 1:
            self._counter.queue_wait(call.app, call.function, attempt.started_at - call.created_at)
        self.packing.observe(policy.version, meta.finished_at - meta.started_at)
        if meta.ok:
            attempt.end("succeeded", None, meta.finished_at)
            call.inline = meta.inline
            call.large = meta.inline is None
            call.payload = payload if call.large else None
            return out + self._finish(call, CallStatus.SUCCEEDED, meta.finished_at)
        failure = meta.failure
        assert failure is not None
        attempt.end(failure.kind.value, failure.summary, meta.finished_at)
        return out + self._failed(call, policy, failure, now)

    def _interrupted(
        self, call: Call, policy: Policy, crash: RemoteFailure | None
    ) -> RemoteFailure:
        why = call.interrupt
        if why is FailureKind.TIMED_OUT:
            return RemoteFailure.of_kind(
                why, f"{policy.label} ran past its timeout of {policy.timeout:g} s."
            )
        if why is FailureKind.NOT_STARTED:
            return RemoteFailure.of_kind(
                why,
                f"{policy.label} did not start within its startup_timeout of "
                f"{policy.startup_timeout:g} s: no node could run it ({policy.needs}).",
            )
        if why is FailureKind.CANCELLED:
            return RemoteFailure.of_kind(why, "The call was cancelled.")
        return crash or RemoteFailure.of_kind(FailureKind.CRASHED, "The attempt was lost.")

    def _failed(
        self, call: Call, policy: Policy, failure: RemoteFailure, now: float
    ) -> list[Command]:
        """An attempt failed: retry after the backoff delay, or end the call."""
        kind = failure.kind
        made = call.tries
        raised = failure.type_names if kind is FailureKind.RAISED else None
        if FAILURES[kind].retryable and policy.retries.should_retry(made, raised):
            call.status = CallStatus.RETRYING
            call.retry_at = now + policy.retries.next_delay(made)
            self._dirty[call.call_id] = None
            self._counter.count("retried", call.app, call.function)
            return [self._set_timer(call, Timer.RETRY, call.retry_at)]
        return self._finish(call, FAILURES[kind].status, now, failure)

    def _finish(
        self, call: Call, status: CallStatus, at: float, failure: RemoteFailure | None = None
    ) -> list[Command]:
        out: list[Command] = [self._stop_timer(call)] if call.timer else []
        self.unfinished[call.app] -= 1
        call.status = status
        call.finished_at = at
        call.failure = failure
        call.retry_at = None
        self._counter.count(_EVENT[status], call.app, call.function)
        current = call.current
        if current is not None and current.started_at is not None:
            self._counter.run_time(call.app, call.function, at - current.started_at)
        if not call.large and status not in DEAD:
            call.args = None  # no attempt will need them again (see restore); a dead
            # letter keeps them, for a requeue
        self.expiry.push(call.call_id, expires_at(at, call.result_ttl))
        self._dirty[call.call_id] = None
        out.append(Finished(call.call_id))
        if call.webhook is not None:
            call.webhook.begin(call.call_id, at)
            out.append(Deliver(call.call_id))
        return out

    # -- timers and cancel --------------------------------------------------------------

    def _set_timer(self, call: Call, kind: Timer, at: float) -> SetTimer:
        call.timer = (kind, len(call.attempts))
        return SetTimer(call.call_id, at)

    def _stop_timer(self, call: Call) -> SetTimer:
        call.timer = None
        return SetTimer(call.call_id, None)

    def timer_fired(self, call_id: str, now: float) -> list[Command]:
        call = self.calls.get(call_id)
        if call is None or call.timer is None:
            return []
        kind, attempt = call.timer
        call.timer = None
        if kind is Timer.START:  # a SCHEDULED call's time has come
            if call.status is not CallStatus.SCHEDULED:
                return []
            return [*self._enqueue(call, now), Pump(call.key, self.launched.get(call.key))]
        if kind is Timer.START_BY:
            if call.status is not CallStatus.QUEUED or call.has_started:
                return []  # launched meanwhile: the worker keeps its start_by
            return self._expire_unstarted(call, now)  # it stays in its queue, skipped
        if kind is Timer.DELIVER:
            pending = call.webhook is not None and call.webhook.pending
            return [Deliver(call_id)] if pending and call.status.is_terminal else []
        if kind is Timer.RETRY:
            if call.status is not CallStatus.RETRYING:
                return []
            call.status = CallStatus.QUEUED
            call.retry_at = None
            # A retry keeps its place ahead of calls submitted after it.
            self.queues[call.key].appendleft(call)
            self._dirty[call_id] = None
            return [Pump(call.key, self.launched.get(call.key))]
        if call.status.is_terminal or len(call.attempts) != attempt:
            return []
        if kind is Timer.STARTUP and call.status is not CallStatus.PENDING:
            return []
        call.interrupt = FailureKind(kind.value)
        return [Kill(call_id)]

    def cancel(
        self, call_id: str, now: float, why: str = "The call was cancelled."
    ) -> list[Command]:
        """A queued call never runs, a running one is stopped (killed), a finished one
        stays as it is. A packed call that has not reported RUNNING may be waiting
        behind others of its pack: its pack runs on, and what it does is not
        recorded."""
        call = self.calls.get(call_id)
        if call is None or call.status.is_terminal:
            return []
        out: list[Command] = []
        in_flight = call.status in (CallStatus.PENDING, CallStatus.RUNNING)
        if in_flight and not (call.packed and call.status is not CallStatus.RUNNING):
            call.interrupt = FailureKind.CANCELLED
            out.append(Kill(call_id))
        if call.current is not None and call.current.outcome is None:
            call.current.end(FailureKind.CANCELLED.value, None, now)
        # A queued call stays in its deque and is skipped when its turn comes.
        failure = RemoteFailure.of_kind(FailureKind.CANCELLED, why)
        return out + self._finish(call, CallStatus.CANCELLED, now, failure)

    def cancel_app(self, app: str, why: str | None, now: float) -> tuple[list[Command], int]:
        """Cancel, saying ``why``, every unfinished call of ``app`` (an ephemeral app
        whose run ended, or whose client went away); returns how many there were."""
        if why is None or not self.unfinished[app]:
            return [], 0
        doomed = [
            c.call_id for c in self.calls.values() if c.app == app and not c.status.is_terminal
        ]
        out: list[Command] = []
        for call_id in doomed:
            out += self.cancel(call_id, now, why)
        return out, len(doomed)

    # -- webhooks -----------------------------------------------------------------------

    def delivery(self, call_id: str) -> tuple[WebhookTarget, str, int, CallInfo] | None:
        """What to post for a call's webhook now: (target, delivery id, its try
        number, the call's record); None if nothing is to be delivered."""
        call = self.calls.get(call_id)
        hook = None if call is None else call.webhook
        if call is None or hook is None or not hook.pending or not call.status.is_terminal:
            return None
        assert hook.delivery_id is not None
        return hook.target, hook.delivery_id, hook.next_attempt(), call.info()

    def delivered(self, call_id: str, attempt: DeliveryInfo, now: float) -> list[Command]:
        """How a try went: noted (journaled), and the next one timed if it failed."""
        call = self.calls.get(call_id)
        if call is None or call.webhook is None or attempt.delivery_id != call.webhook.delivery_id:
            return []  # expired meanwhile, or requeued (a new event)
        self._dirty[call_id] = None
        retry_at = call.webhook.tried(attempt, now)
        if retry_at is None or not call.status.is_terminal:
            return []
        retry_at = min(retry_at, expires_at(call.finished_at or now, call.result_ttl))
        return [self._set_timer(call, Timer.DELIVER, retry_at)]

    def redeliver(self, call_id: str, now: float) -> tuple[list[Command], str | None]:
        """Deliver a finished call's end again, now (the same delivery id, a fresh
        retry window). The commands, or why not."""
        call = self.calls.get(call_id)
        if call is None:
            return [], "unknown"
        if call.webhook is None:
            return [], "it has no webhook"
        if not call.status.is_terminal or call.webhook.delivery_id is None:
            return [], f"it is {call.status.value}: its end is delivered when it ends"
        call.webhook.replay(now)
        self._dirty[call_id] = None
        return [Deliver(call_id)], None

    # -- expiry -------------------------------------------------------------------------

    def expire_due(self, now: float, limit: int | None = None) -> int:
        """Drop the results whose deadline has passed (at most ``limit``); a deadline
        of a call requeued since is stale (it gets a new one when it ends again)."""
        count = 0
        for call_id in self.expiry.pop_due(now, limit):
            call = self.calls.get(call_id)
            if call is None or call.expired(now):
                self._expire(call_id)
            count += 1
        return count

    def expire_if_due(self, call: Call, now: float) -> bool:
        if call.expired(now):
            self._expire(call.call_id)
            return True
        return False

    def _expire(self, call_id: str) -> None:
        call = self.calls.pop(call_id, None)
        if call is not None:
            self.tombstones.add(call_id)
            self.children.pop(call_id, None)
            if call.function != SYNTHETIC:
                self._removed.append(call_id)
            self._counter.count("expired", call.app, call.function)

    def gone(self, call_id: str, shard: int, epoch: int) -> CallStatus | None:
        """Why an id is not tracked: EXPIRED (a tombstone says so), LOST (an earlier
        epoch of this shard issued it and the journal does not hold it: it expired
        before, its tombstone forgotten since), or None (never issued)."""
        if call_id in self.tombstones:
            return CallStatus.EXPIRED
        origin = parse_call_id(call_id)
        if origin is not None and origin.shard == shard and origin.epoch < epoch:
            return CallStatus.LOST
        return None

    # -- reading ------------------------------------------------------------------------

    def listing(self, query: CallQuery) -> list[CallInfo]:
        """Calls newest first, filtered; ``before`` (a call id) continues a listing;
        ``dead``: only dead letters (FAILED or TIMED_OUT, retries used up)."""
        app, function, status, limit, before, dead, since, until, prefix = query
        found: list[CallInfo] = []
        seeking = before is not None
        for call in reversed(self.calls.values()):
            if seeking:
                seeking = call.call_id != before
                continue
            if since is not None and call.created_at < since:
                break  # newest first: every call after this one is older
            if until is not None and call.created_at >= until:
                continue
            if prefix is not None and not call.call_id.startswith(prefix):
                continue
            if app is not None and app_of(call.app) != app:
                continue
            if function is not None and call.function != function:
                continue
            if status is not None and call.status is not status:
                continue
            if dead and call.status not in DEAD:
                continue
            found.append(call.info())
            if len(found) >= limit:
                break
        return found

    def graph(self, call: Call, depth: int = 0) -> CallGraphNode:
        """A call with the calls spawned from inside it (expired ones left out)."""
        children = []
        if depth < _MAX_GRAPH_DEPTH:
            for child_id in self.children.get(call.call_id, ())[:_MAX_GRAPH_CHILDREN]:
                child = self.calls.get(child_id)
                if child is not None:
                    children.append(self.graph(child, depth + 1))
        app = app_of(call.app)
        return CallGraphNode(call.call_id, app, call.function, call.status, tuple(children))

    # -- the journal --------------------------------------------------------------------

    def take_changes(self) -> tuple[list[tuple[Any, ...]], list[str]]:
        """The records of calls changed since the last take, and the ids expired."""
        calls = self.calls
        records = [calls[i].record() for i in self._dirty if i in calls]
        removed = self._removed
        self._dirty = {}
        self._removed = []
        return records, removed

    def stats(self) -> dict[str, int]:
        return {
            "tracked_calls": len(self.calls),
            "queued": sum(len(q) for q in self.queues.values()),
            "running": sum(self.running.values()),
            "expiry_queue": len(self.expiry),
            "tombstones": len(self.tombstones),
            "packs": self.packs,
        }

    def has_changes(self) -> bool:
        return bool(self._dirty or self._removed)

    def is_changed(self, call_id: str) -> bool:
        return call_id in self._dirty

    def fill_synthetic(self, call_ids: list[str], result_ttl: float, now: float) -> None:
        """Track finished filler calls (benchmarks: scale without running them)."""
        for call_id in call_ids:
            call = Call(call_id, "rayfn-bench", SYNTHETIC, None, result_ttl, now)
            call.status = CallStatus.SUCCEEDED
            call.finished_at = now
            self.calls[call_id] = call
            self.expiry.push(call_id, expires_at(now, result_ttl))

    def clear_synthetic(self) -> None:
        self.calls = {i: c for i, c in self.calls.items() if c.function != SYNTHETIC}

    def snapshot(self) -> Iterator[tuple[Any, ...] | str]:
        """The tombstones (bare ids: restoring one forgets a call), then every tracked
        call's record, args included where an attempt may need them."""
        yield from self.tombstones
        for call in list(self.calls.values()):
            if call.function != SYNTHETIC:
                call.journaled = False
                yield call.record()

    def restore(self, records: Iterable[tuple[Any, ...] | str], now: float) -> list[Command]:
        """Rebuild the book from the journal: snapshot records then the tail, in
        order (a call's last record wins; a bare id is a call that expired). Finished
        calls answer as before; queued ones keep their order; calls in backoff wait
        out what is left of it; calls that were running, or that succeeded with a
        result too large for the journal, run again as a new attempt."""
        for record in records:
            if isinstance(record, str):
                self.calls.pop(record, None)
                self.tombstones.add(record)
                continue
            # A changed call keeps its place: the book's order is acceptance order.
            self.calls[record[0]] = Call.from_record(record, self.calls.get(record[0]))
        out: list[Command] = []
        for call in self.calls.values():
            if call.token is not None:
                self.resubmits.sent(call.token, call.call_id)
            if call.idempotency is not None:
                self.resubmits.name(call.key, call.idempotency, call.call_id)
            if call.parent is not None and call.parent in self.calls:
                self.children[call.parent].append(call.call_id)
            status = call.status
            if status is CallStatus.SUCCEEDED and call.large:
                self._rerun(call, "its result was too large for the journal", now)
            elif status.is_terminal:
                assert call.finished_at is not None
                if status not in DEAD:
                    call.args = None
                self.expiry.push(call.call_id, expires_at(call.finished_at, call.result_ttl))
                if call.webhook is not None and call.webhook.pending:
                    out.append(Deliver(call.call_id))  # where it was: tries from the start
            elif status is CallStatus.RETRYING:
                out.append(self._set_timer(call, Timer.RETRY, call.retry_at or now))
            elif status is CallStatus.SCHEDULED:
                out.append(self._set_timer(call, Timer.START, call.scheduled_for or now))
            elif status in (CallStatus.PENDING, CallStatus.RUNNING):
                self._rerun(call, "the registry restarted while it ran", now)
            else:
                self.queues[call.key].append(call)
                if call.start_by is not None and not call.has_started:
                    out.append(self._set_timer(call, Timer.START_BY, call.start_by))
        self.unfinished = collections.Counter(
            c.app for c in self.calls.values() if not c.status.is_terminal
        )
        out += [Pump(key, None) for key in self.queues]
        return out

    def _rerun(self, call: Call, why: str, now: float) -> None:
        current = call.current
        if current is not None and (current.outcome is None or current.outcome == "succeeded"):
            current.end(INTERRUPTED, why, now)
        call.status = CallStatus.QUEUED
        call.finished_at = None
        call.inline = None
        call.large = False
        self.queues[call.key].append(call)
        self._dirty[call.call_id] = None
