"""Spawns coalesced behind the scenes: ``spawn()`` hands its call to one sender
thread per process and returns; the sender ships everything queued meanwhile to the
registry in one ``submit`` round trip, one batch in flight at a time, so a
process's calls reach the registry in the order they were spawned.

A call's id exists once the registry has accepted it, and a ``FunctionCall`` only
lets its id out (``object_id``, ``get``, pickling...) after that; so an id anybody
holds is never lost. The process flushes what it queued before it exits normally.

Each call's ``Future`` follows the ``concurrent.futures`` protocol: whoever takes a
call to send it (the sender, or ``claim`` for a ``get`` that sends it along) first
marks it running, which fails for a call cancelled while queued (an abandoned
``spawn.aio``): that call is dropped, never sent. A running call cannot be cancelled,
so every call sent gets its answer. One failed batch fails its own calls only; a
sender thread that dies anyway is replaced by the next ``submit``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError

from rayfn import _connection, _prefetch
from rayfn.exception import ConflictError, NotFoundError
from rayfn.runtime.constants import SPAWN_BATCH_SIZE
from rayfn.runtime.executor import current_call_id
from rayfn.runtime.protocol import CallOptions, Conflict, Submission
from rayfn.runtime.records import NotDeployed

logger = logging.getLogger(__name__)

# How long interpreter exit waits for queued spawns to be accepted.
_EXIT_FLUSH_S = 60.0

# Sends a batch and returns the registry's answer for each: an id, or a refusal.
Answer = str | NotDeployed | Conflict
Send = Callable[[list[Submission]], list[Answer]]


def accepted_id(answer: Answer) -> str:
    """A call's id from the registry's answer to its submission.

    Raises:
        NotFoundError: its function is not deployed.
        ConflictError: its idempotency key names a call made with other arguments.
    """
    if isinstance(answer, NotDeployed):
        raise NotFoundError(answer.message())
    if isinstance(answer, Conflict):
        raise ConflictError(
            f"Idempotency key {answer.idempotency_key!r} names call {answer.call_id}, made "
            "with other arguments: the same key must mean the same call."
        )
    return answer


def send_to_registry(submissions: list[Submission]) -> list[Answer]:
    """One ``submit`` round trip to the registry. Its token makes the batch safe to
    send again (the client does, after a registry restart): no call twice."""
    answers = _connection.registry().submit(submissions, spawn_token()).result().answers
    _prefetch.spawned([a for a in answers if isinstance(a, str)])
    return answers


def spawn_token() -> str:
    """A fresh token for one spawn round trip."""
    return os.urandom(12).hex()


class Spawner:
    """This process's queue of spawned calls and the thread that sends them.

    Args:
        send: what ships a batch (the registry round trip; tests pass their own).
    """

    def __init__(self, send: Send = send_to_registry) -> None:
        self._send = send
        self._lock = threading.Condition()
        self._queued: list[tuple[Submission, Future[str]]] = []
        self._in_flight = False
        self._pid = os.getpid()
        self._replaced = False  # a sender thread died and was replaced (warned once)
        self._thread = self._start_sender()

    def submit(
        self, target: str, function: str, blob: bytes, options: CallOptions | None = None
    ) -> Future[str]:
        """Queue a call; the future gets its id once the registry has accepted it (or
        the error that refused it). Cancelling the future before the sender takes it
        drops the call."""
        future: Future[str] = Future()
        parent = current_call_id()  # spawned from inside a call: for the call graph
        with self._lock:
            self._revive_sender()
            self._queued.append((Submission(target, function, blob, parent, options), future))
            self._lock.notify_all()
        return future

    def claim(self, future: Future[str]) -> Submission | None:
        """Take back the call ``future`` stands for, for its caller to send along with
        its ``get`` (one round trip for both): only while it is next in line and no
        batch is on its way, so it cannot overtake calls spawned before it. The caller
        must then settle ``future`` (result or exception)."""
        with self._lock:
            if self._in_flight or not self._queued or self._queued[0][1] is not future:
                return None
            request, _ = self._queued.pop(0)
        if not future.set_running_or_notify_cancel():
            return None  # cancelled while queued: dropped, as the sender would
        return request

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been answered."""
        with self._lock:
            self._revive_sender()
            return self._lock.wait_for(lambda: not self._queued and not self._in_flight, timeout)

    def _start_sender(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="rayfn-spawner", daemon=True)
        thread.start()
        return thread

    def _revive_sender(self) -> None:
        """Start a new sender thread if the last one died (call with the lock held);
        it takes over the queued calls."""
        if self._thread.is_alive():
            return
        if not self._replaced:
            logger.warning(
                "rayfn: this process's spawn sender thread died; starting a new one, which "
                "sends the %d calls still queued.",
                len(self._queued),
            )
            self._replaced = True
        self._thread = self._start_sender()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: bool(self._queued))
                taken = self._queued[:SPAWN_BATCH_SIZE]
                del self._queued[:SPAWN_BATCH_SIZE]
                self._in_flight = True
            try:
                # Running from here on: cancel() now fails, and the call gets its answer.
                batch = [(r, f) for r, f in taken if f.set_running_or_notify_cancel()]
                if batch:
                    self._deliver(batch)
            except Exception as exc:  # one bad batch must not stop every later spawn
                logger.warning(
                    "rayfn: sending %d spawned calls failed (%s: %s); reading their ids raises it.",
                    len(taken),
                    type(exc).__name__,
                    exc,
                )
                _fail(taken, exc)
            except BaseException as exc:  # the thread is going down: nobody waits forever
                _fail(taken, exc)
                raise
            finally:
                with self._lock:
                    self._in_flight = False
                    self._lock.notify_all()

    def _deliver(self, batch: list[tuple[Submission, Future[str]]]) -> None:
        answers = self._send([request for request, _ in batch])
        for (_, future), answer in zip(batch, answers, strict=True):
            try:
                future.set_result(accepted_id(answer))
            except (NotFoundError, ConflictError) as refused:
                future.set_exception(refused)


def _fail(batch: list[tuple[Submission, Future[str]]], exc: BaseException) -> None:
    """Settle with ``exc`` each future of ``batch`` that has no outcome yet."""
    for _, future in batch:
        with contextlib.suppress(InvalidStateError):  # answered, or cancelled meanwhile
            future.set_exception(exc)


_spawner: Spawner | None = None
_spawner_lock = threading.Lock()


def spawner() -> Spawner:
    """This process's spawner (a forked child gets its own)."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner._pid != os.getpid():
            _spawner = Spawner()
            # Registered after ray.init registered its shutdown: exit handlers run
            # last-in first-out, so the flush runs while Ray is still up.
            atexit.register(_flush_at_exit)
        return _spawner


def _flush_at_exit() -> None:
    if _spawner is not None and _spawner._pid == os.getpid():
        _spawner.flush(_EXIT_FLUSH_S)
