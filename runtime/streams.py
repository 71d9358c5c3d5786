"""What generator calls yield, held by the registry for their callers.

A generator function's attempt is a Ray streaming generator task the registry submits
(it owns each value's object, as it owns every result); the launcher adds each value's
ref to the call's ``CallStream`` as Ray reports it, and ``Function.remote_gen`` reads
from there, waiting for more. A stream is dropped once its reader has read it to the
end, or, unread, ``STREAM_KEEP_S`` after the call ended; a reader then finds it gone.
The values live in the registry's memory only (not the journal): after a registry
restart a reader finds the stream gone and is told so (``CallLostError``).
"""

from __future__ import annotations

import asyncio
import contextlib

import ray


class CallStream:
    """The values one generator call has yielded so far, and whether it ended."""

    def __init__(self) -> None:
        self.items: list[ray.ObjectRef[object]] = []
        self.ended = False
        self._changed = asyncio.Event()

    def add(self, ref: ray.ObjectRef[object]) -> None:
        self.items.append(ref)
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    async def wait_past(self, start: int, timeout: float) -> None:
        """Return once there are values from ``start`` on, or the call ended, or after
        ``timeout`` seconds."""
        if len(self.items) > start or self.ended:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
