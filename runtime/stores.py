"""The actors behind ``rayfn.Dict`` and ``rayfn.Queue``: one detached named actor per
object. They hold pickled bytes (keys and values are pickled by the client), so they
never need the user's classes.

Contents are written through to Ray's GCS key-value store before a change is answered,
one entry per key (Dict) or per item (Queue), and read back when the actor starts: a
store whose actor is restarted comes back as it was (and, with GCS fault tolerance on an
external Redis, across a head-node restart too). Each object holds at most
``STORE_MAX_BYTES`` of keys and values; a change that would pass it is refused whole.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import struct
import time

from rayfn.runtime import kv
from rayfn.runtime.constants import KV_STORE_PREFIX, STORE_MAX_BYTES

_LENGTH = struct.Struct(">I")  # the key's length, before the key and value in an entry


class StoreFull(Exception):
    """A change would take a store past ``STORE_MAX_BYTES`` (the SDK says so)."""


class _Entries:
    """A store's entries in GCS KV, under one prefix per store."""

    def __init__(self, kind: str, name: str) -> None:
        self.prefix = f"{KV_STORE_PREFIX}{kind}:{name}:"

    def load(self) -> list[tuple[str, bytes]]:
        found = []
        for key in kv.keys(self.prefix):
            value = kv.get(key)
            if value is not None:
                found.append((key[len(self.prefix) :], value))
        return found

    def put(self, suffix: str, value: bytes) -> None:
        kv.put(self.prefix + suffix, value)

    def delete(self, suffix: str) -> None:
        kv.delete(self.prefix + suffix)

    def clear(self) -> None:
        kv.delete(self.prefix, by_prefix=True)


def _slot(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


class DictStore:
    """A dict of pickled key -> pickled value."""

    def __init__(self, name: str) -> None:
        self._entries = _Entries("dict", name)
        self._data: dict[bytes, bytes] = {}
        for _, entry in self._entries.load():
            (length,) = _LENGTH.unpack_from(entry)
            start = _LENGTH.size
            self._data[entry[start : start + length]] = entry[start + length :]
        self._bytes = sum(len(k) + len(v) for k, v in self._data.items())

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
        self._write([(key, value)])
        return True

    async def update(self, items: list[tuple[bytes, bytes]]) -> None:
        self._write(items)

    async def pop(self, key: bytes) -> tuple[bool, bytes | None]:
        value = self._data.pop(key, None)
        if value is not None:
            self._entries.delete(_slot(key))
            self._bytes -= len(key) + len(value)
        return (value is not None, value)

    async def size(self) -> int:
        return len(self._data)

    async def items(self) -> list[tuple[bytes, bytes]]:
        return list(self._data.items())

    async def clear(self) -> None:
        self._entries.clear()
        self._data.clear()
        self._bytes = 0

    async def destroy(self) -> None:
        """Drop the persisted contents (the store is being deleted)."""
        await self.clear()

    async def debug_pid(self) -> int:
        """This actor's process, for tests that restart it."""
        return os.getpid()

    def _write(self, items: list[tuple[bytes, bytes]]) -> None:
        """Persist, then apply, ``items``: all of them, or none if they do not fit."""
        latest = dict(items)
        grown = sum(
            len(k) + len(v) - (len(k) + len(self._data[k]) if k in self._data else 0)
            for k, v in latest.items()
        )
        if self._bytes + grown > STORE_MAX_BYTES:
            raise StoreFull(
                f"this would hold {self._bytes + grown} bytes, over the limit of "
                f"{STORE_MAX_BYTES} bytes per Dict"
            )
        for key, value in latest.items():
            self._entries.put(_slot(key), _LENGTH.pack(len(key)) + key + value)
        self._data.update(latest)
        self._bytes += grown


class QueueStore:
    """A FIFO of pickled values whose getters wait, inside the actor, for a put. All
    methods run on the actor's one event loop, so no lock is needed. Each item is
    persisted under its sequence number, which keeps the order across a restart."""

    def __init__(self, name: str) -> None:
        self._entries = _Entries("queue", name)
        stored = sorted((int(seq), value) for seq, value in self._entries.load())
        self._items: collections.deque[tuple[int, bytes]] = collections.deque(stored)
        self._next = stored[-1][0] + 1 if stored else 0
        self._bytes = sum(len(value) for _, value in stored)
        self._nonempty = asyncio.Event()
        if self._items:
            self._nonempty.set()

    async def put_many(self, values: list[bytes]) -> None:
        added = sum(len(v) for v in values)
        if self._bytes + added > STORE_MAX_BYTES:
            raise StoreFull(
                f"this would hold {self._bytes + added} bytes, over the limit of "
                f"{STORE_MAX_BYTES} bytes per Queue"
            )
        for value in values:
            self._entries.put(f"{self._next:020d}", value)
            self._items.append((self._next, value))
            self._next += 1
        self._bytes += added
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
        for seq, value in taken:
            self._entries.delete(f"{seq:020d}")
            self._bytes -= len(value)
        if not self._items:
            self._nonempty.clear()
        return [value for _, value in taken]

    async def size(self) -> int:
        return len(self._items)

    async def clear(self) -> None:
        self._entries.clear()
        self._items.clear()
        self._bytes = 0
        self._nonempty.clear()

    async def destroy(self) -> None:
        """Drop the persisted contents (the store is being deleted)."""
        await self.clear()

    async def debug_pid(self) -> int:
        """This actor's process, for tests that restart it."""
        return os.getpid()
