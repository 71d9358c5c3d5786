"""Spawns coalesced behind the scenes: ``spawn()`` hands its call to one sender
thread per process and returns; the sender ships everything queued meanwhile to the
registry in one ``spawn_batch`` round trip, one batch in flight at a time, so a
process's calls reach the registry in the order it spawned them.

A call's id exists once the registry has accepted it, and a ``FunctionCall`` only
lets its id out (``object_id``, ``get``, pickling...) after that; so an id anybody
holds is never lost. The process flushes what it queued before it exits normally.
"""

from __future__ import annotations

import atexit
import os
import threading
from concurrent.futures import Future
from typing import Any

from rayfn import _connection, _prefetch
from rayfn.exception import NotFoundError
from rayfn.runtime.constants import SPAWN_BATCH_SIZE
from rayfn.runtime.executor import current_call_id
from rayfn.runtime.records import NotDeployed

# How long interpreter exit waits for queued spawns to be accepted.
_EXIT_FLUSH_S = 60.0


class Spawner:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queued: list[tuple[str, str, bytes, str | None, Future[str]]] = []
        self._in_flight = False
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="rayfn-spawner", daemon=True).start()

    def submit(self, target: str, function: str, blob: bytes) -> Future[str]:
        """Queue a call; the future gets its id once the registry has accepted it (or
        the error that refused it)."""
        future: Future[str] = Future()
        parent = current_call_id()  # spawned from inside a call: for the call graph
        with self._lock:
            self._queued.append((target, function, blob, parent, future))
            self._lock.notify_all()
        return future

    def claim(self, future: Future[str]) -> tuple[str, str, bytes, str | None] | None:
        """Take back the call ``future`` stands for, for its caller to send along with
        its ``get`` (one round trip for both): only while it is next in line and no
        batch is on its way, so it cannot overtake calls spawned before it."""
        with self._lock:
            if self._in_flight or not self._queued or self._queued[0][4] is not future:
                return None
            target, function, blob, parent, _ = self._queued.pop(0)
            return target, function, blob, parent

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been answered."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._queued and not self._in_flight, timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: bool(self._queued))
                batch = self._queued[:SPAWN_BATCH_SIZE]
                del self._queued[:SPAWN_BATCH_SIZE]
                self._in_flight = True
            try:
                self._send(batch)
            finally:
                with self._lock:
                    self._in_flight = False
                    self._lock.notify_all()

    @staticmethod
    def _send(batch: list[tuple[str, str, bytes, str | None, Future[str]]]) -> None:
        items = [item[:4] for item in batch]
        try:
            answers: list[Any] = _connection.ask(_connection.registry(), "spawn_batch", items)
        except BaseException as exc:  # the registry is gone for good: every call says so
            for *_, future in batch:
                future.set_exception(exc)
            return
        _prefetch.spawned([a for a in answers if isinstance(a, str)])
        for (*_, future), answer in zip(batch, answers, strict=True):
            if isinstance(answer, NotDeployed):
                future.set_exception(NotFoundError(answer.message()))
            else:
                future.set_result(answer)


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
