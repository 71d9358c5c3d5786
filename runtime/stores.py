"""The actors behind ``rayfn.Dict`` and ``rayfn.Queue``: one detached named actor per
object. They hold pickled bytes (keys and values are pickled by the client), so they
never need the user's classes."""

from __future__ import annotations

import asyncio
import collections
import time


class DictStore:
    """A dict of pickled key -> pickled value."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    async def get(self, key: bytes) -> tuple[bool, bytes | None]:
        value = self._data.get(key)
        return (value is not None, value)

    async def contains(self, key: bytes) -> bool:
        return key in self._data

    async def put(self, key: bytes, value: bytes, skip_if_exists: bool) -> bool:
        """Store ``value``; with ``skip_if_exists``, only if ``key`` is absent. Whether
        it was written: one actor serves puts one at a time, so this is a lock."""
        if skip_if_exists and key in self._data:
            return False
        self._data[key] = value
        return True

    async def update(self, items: list[tuple[bytes, bytes]]) -> None:
        self._data.update(items)

    async def pop(self, key: bytes) -> tuple[bool, bytes | None]:
        value = self._data.pop(key, None)
        return (value is not None, value)

    async def size(self) -> int:
        return len(self._data)

    async def items(self) -> list[tuple[bytes, bytes]]:
        return list(self._data.items())

    async def clear(self) -> None:
        self._data.clear()


class QueueStore:
    """A FIFO of pickled values whose getters wait, inside the actor, for a put. All
    methods run on the actor's one event loop, so no lock is needed."""

    def __init__(self) -> None:
        self._items: collections.deque[bytes] = collections.deque()
        self._nonempty = asyncio.Event()

    async def put_many(self, values: list[bytes]) -> None:
        self._items.extend(values)
        if self._items:
            self._nonempty.set()

    async def get_many(self, n: int, timeout: float | None) -> list[bytes]:
        """Up to ``n`` values, waiting up to ``timeout`` seconds (None: forever; 0:
        not at all) for at least one; [] when none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._items:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return []
            try:
                await asyncio.wait_for(self._nonempty.wait(), left)
            except TimeoutError:
                return []
        taken = [self._items.popleft() for _ in range(min(n, len(self._items)))]
        if not self._items:
            self._nonempty.clear()
        return taken

    async def size(self) -> int:
        return len(self._items)

    async def clear(self) -> None:
        self._items.clear()
        self._nonempty.clear()
