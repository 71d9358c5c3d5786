"""``rayfn.set_progress``: a running call says how far it is; ``call.status()``, the CLI
and the job API show it. A worker sends each call's latest value at most every
``PROGRESS_EVERY_S``, so a tight loop calling it costs a dict assignment, and the
registry one message per call per interval."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from rayfn.exception import InvalidError
from rayfn.records import Progress
from rayfn.runtime import clients
from rayfn.runtime.executor import current_attempt

PROGRESS_EVERY_S = 0.5
MAX_PROGRESS_BYTES = 2048  # a dict's JSON
MAX_MESSAGE_CHARS = 500


def set_progress(value: float | dict[str, Any], message: str | None = None) -> None:
    """Say how far the running call is: ``value`` a fraction done (0 to 1) or a small
    JSON-able dict, with an optional ``message``. The latest one reaches the cluster
    within half a second.

    Example:
        >>> for i, item in enumerate(items):
        ...     rayfn.set_progress((i + 1) / len(items), f"item {i + 1}")

    Raises:
        InvalidError: outside a call, or a value that is neither (a number outside
            0..1, a dict over 2 KiB of JSON), or a message over 500 characters.
    """
    here = current_attempt()
    if here is None:
        raise InvalidError("set_progress is for code that runs in a call (a remote function).")
    _sender.set(here, Progress(checked_progress(value), checked_message(message), time.time()))


def checked_progress(value: Any) -> float | dict[str, Any]:
    """``value`` as progress: a float in 0..1, or a dict of at most 2 KiB of JSON.

    Raises:
        InvalidError: anything else.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise InvalidError(f"Progress must be a fraction from 0 to 1, got {value!r}.")
        return float(value)
    if isinstance(value, dict):
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidError(f"A progress dict must be JSON-able: {exc}.") from None
        if len(text.encode()) > MAX_PROGRESS_BYTES:
            raise InvalidError(
                f"A progress dict is {len(text.encode())} bytes of JSON, over "
                f"{MAX_PROGRESS_BYTES}: keep it small (counts, a stage name)."
            )
        parsed: dict[str, Any] = json.loads(text)  # plain JSON from here on
        return parsed
    raise InvalidError(
        f"Progress is a fraction from 0 to 1 or a small dict, not {type(value).__name__}."
    )


def checked_message(message: Any) -> str | None:
    if message is None:
        return None
    if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
        raise InvalidError(f"A progress message is a string of at most {MAX_MESSAGE_CHARS} chars.")
    return message


class _Sender:
    """The latest progress of each call of this process, sent every interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, int], Progress] = {}
        self._timer: threading.Timer | None = None
        self._last_sent = 0.0

    def set(self, attempt: tuple[str, int], progress: Progress) -> None:
        with self._lock:
            self._latest[attempt] = progress
            if self._timer is None:
                wait = max(0.0, self._last_sent + PROGRESS_EVERY_S - time.monotonic())
                self._timer = threading.Timer(wait, self._send)
                self._timer.daemon = True
                self._timer.start()

    def _send(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, {}
            self._timer = None
            self._last_sent = time.monotonic()
        registry = clients.existing_registry()
        if registry is None:
            return
        for (call_id, attempt), progress in latest.items():
            registry.set_progress(call_id, attempt, progress)


_sender = _Sender()
