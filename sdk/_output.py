"""What remote calls print, shown in this terminal as it happens.

Workers tag each call's output with the call (runtime/output.py); Ray's log monitor
publishes it on the GCS log channel. One thread per process follows that channel and
prints the lines of the apps this process follows, each with its function and call:

    [process_job fc-0-1-jq3…] loading weights

``App.run()`` (and so ``rayfn run``) follows its own app; ``rayfn serve`` also follows
its web functions' replicas; inside ``enable_output()`` the deployed apps this process
looks up are followed too.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

from rayfn.runtime import _ray_compat as ray_compat
from rayfn.runtime.code import app_digest
from rayfn.runtime.output import parse_tag

# After a followed app's block ends, its last lines may still be on their way (the log
# monitor publishes a few times a second): wait for a quiet spell, within a bound.
_QUIET_S = 0.6
_DRAIN_MAX_S = 3.0
_POLL_S = 0.2


class _Follower:
    """The process's one subscriber to Ray's log channel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apps: Counter[str] = Counter()  # app digest -> blocks following it
        self._replicas: Counter[str] = Counter()  # Serve actor-name prefix -> blocks
        self._deployed: set[str] = set()  # looked up inside enable_output()
        self.enabled = 0  # enable_output() blocks open
        self._thread: threading.Thread | None = None
        self._address = ""  # of the GCS the thread follows
        self._stop = threading.Event()
        self._subscriber: ray_compat.LogSubscriber | None = None
        self._last_line_at = 0.0
        self._progress: dict[bool, bool] = {False: False, True: False}  # a bar is drawn

    @contextlib.contextmanager
    def following(self, app: str | None, replicas: str | None = None) -> Iterator[None]:
        """Show, for the block, the output of ``app``'s calls and of the Serve replicas
        whose actor names start with ``replicas``."""
        digest = app_digest(app) if app is not None else ""
        with self._lock:
            self._apps[digest] += 1
            if replicas is not None:
                self._replicas[replicas] += 1
        self._start()
        try:
            yield
        finally:
            self.drain()
            with self._lock:
                self._apps[digest] -= 1
                if replicas is not None:
                    self._replicas[replicas] -= 1
                self._apps += Counter()  # drops the zeros
                self._replicas += Counter()
            self._stop_when_idle()

    def note_deployed(self, app: str) -> None:
        if self.enabled:
            with self._lock:
                self._deployed.add(app_digest(app))
            self._start()

    def drain(self) -> None:
        if self._thread is None:
            return
        deadline = time.monotonic() + _DRAIN_MAX_S
        started = time.monotonic()
        while time.monotonic() < deadline:
            quiet_since = max(self._last_line_at, started)
            if time.monotonic() - quiet_since >= _QUIET_S:
                return
            time.sleep(0.05)

    def _start(self) -> None:
        """Follow the connected cluster's log channel (again, after a reconnect)."""
        from rayfn import _connection

        _connection.connect()
        import ray

        address = ray.get_runtime_context().gcs_address
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._address == address:
                return
            self._stop_thread()  # one of an earlier connection
            self._stop = stop = threading.Event()
            subscriber = ray_compat.subscribe_to_logs(address)
            self._subscriber = subscriber
            self._address = address
            self._thread = threading.Thread(
                target=self._follow, args=(subscriber, stop), name="rayfn-output", daemon=True
            )
            self._thread.start()

    def _stop_when_idle(self) -> None:
        """No thread while nothing is followed: a subscriber left polling a cluster
        that has gone spins a core inside Ray."""
        with self._lock:
            if not self._apps and not self._replicas and not self.enabled:
                self._stop_thread()

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._subscriber is not None:
            self._subscriber.close()  # wakes a poll in flight
            self._subscriber = None
        self._thread = None

    def _follow(self, subscriber: ray_compat.LogSubscriber, stop: threading.Event) -> None:
        import ray

        try:
            while not stop.is_set():
                try:
                    batch = subscriber.poll(timeout=_POLL_S)
                except Exception:  # the cluster went away: nothing more to show
                    return
                if batch is None:  # the GCS does not answer (Ray answers at once)
                    if not ray.is_initialized():
                        return
                    stop.wait(_POLL_S)
                    continue
                prefix = self._prefix(batch) if batch else None
                if prefix is not None:
                    self._last_line_at = time.monotonic()
                    self._show(prefix, batch["lines"], bool(batch.get("is_err")))
        except Exception:  # closed under it by _stop_thread
            return

    def _prefix(self, batch: dict[str, Any]) -> str | None:
        """How to prefix the batch's lines, or None when no one here follows it."""
        tagged = parse_tag(batch.get("task_name"))
        with self._lock:
            if tagged is not None:
                digest, function, call_id = tagged
                if digest in self._apps or (self.enabled and digest in self._deployed):
                    return f"[{function} {call_id}] "
                return None
            actor = batch.get("actor_name") or ""
            for replicas in self._replicas:
                if actor.startswith(replicas):
                    function = actor[len(replicas) :].split(":", 1)[0]
                    return f"[{function} web] "
        return None

    def _show(self, prefix: str, lines: list[str], is_err: bool) -> None:
        stream: TextIO = sys.stderr if is_err else sys.stdout
        terminal = stream.isatty()
        for line in lines:
            if "\r" in line:  # a progress bar redrawn in place: its latest state
                latest = line.rstrip("\r").rsplit("\r", 1)[-1]
                stream.write(f"\r{prefix}{latest}\x1b[K" if terminal else f"{prefix}{latest}\n")
                self._progress[is_err] = True
                continue
            if self._progress[is_err]:
                self._progress[is_err] = False
                if terminal:
                    stream.write("\n")
                if not line:  # the newline that ended the bar
                    continue
            stream.write(f"{prefix}{line}\n")
        stream.flush()


follower = _Follower()


@contextlib.contextmanager
def enable_output(show_progress: bool = True) -> Iterator[None]:
    """Show what remote calls print, as Modal's ``enable_output`` does: besides the
    apps this process runs (always shown), the deployed apps it looks up in the block.

    Example:
        >>> with rayfn.enable_output():
        ...     rayfn.Function.from_name("jobs", "process").remote(1)
    """
    follower.enabled += 1
    try:
        yield
    finally:
        follower.drain()
        follower.enabled -= 1
        follower._stop_when_idle()
