"""The registry's journal: each shard's calls in Ray's GCS key-value store, so a
restarted registry finds every call it had accepted (runtime/book.py, ``restore``).

Writes are group commits: whatever changed in the book since the last write goes out
as one *segment* (``rayfn:journal:<shard>:seg:<seq>``), one write in flight at a time.
Whoever is about to tell of a change (a spawn's ids, a call's end or state) awaits
``sync()``, which returns once a write that started after the change has landed; a
change nobody has asked about yet goes out within ``LAZY_WRITE_S`` (``nudge()``). So a
short call's acceptance, launch and end usually take one write, when its answer needs
them: each write costs the GCS and the registry CPU that calls would otherwise use.

Once the segments outweigh the last snapshot, a *snapshot* of every tracked call is
written beside them (``snap:<generation>:<chunk>``), then the ``head`` entry that
names it and the last segment it covers, and then the covered segments go. The
snapshot is fuzzy (the book changes while it is written): every change made meanwhile
is also in a later segment, and a call's last record wins.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from rayfn.runtime import kv
from rayfn.runtime.constants import KV_JOURNAL_PREFIX, KV_REGISTRY_EPOCH_PREFIX

logger = logging.getLogger(__name__)

Record = tuple[Any, ...] | str  # a call's state, or the id of a call that expired

# A segment or snapshot chunk is cut once it holds this many bytes of records.
CHUNK_BYTES = 4 * 1024 * 1024
# Compaction waits until the segments hold at least this much, however small the
# snapshot: a quiet registry never compacts.
COMPACT_MIN_BYTES = 16 * 1024 * 1024
# A write that fails (the GCS restarting) is tried again after this long, for ever:
# the calls waiting on it are not acknowledged until it lands.
RETRY_WRITE_S = 0.5
# A change nobody waits for is written within this long (a registry that dies sooner
# loses it: a launch or a backoff it forgets runs the call again, as for a call that
# was running then; what anybody was told is always in the journal already).
LAZY_WRITE_S = 0.05


class Source(Protocol):
    """What the journal writes: the call book (runtime/book.py)."""

    def take_changes(self) -> tuple[list[tuple[Any, ...]], list[str]]:
        """The records of calls changed since the last take, and the ids expired."""

    def has_changes(self) -> bool: ...

    def is_changed(self, call_id: str) -> bool:
        """Whether the call changed since the last take."""

    def snapshot(self) -> Iterator[Record]:
        """Every tracked call's record (and the tombstones, as bare ids)."""


class Journal:
    """One registry shard's journal of ``source``'s changes."""

    def __init__(self, shard: int, source: Source) -> None:
        self._prefix = f"{KV_JOURNAL_PREFIX}{shard}:"
        self._source = source
        self._seq = 0  # the last segment written
        self._generation = 0  # of the current snapshot
        self._covered = 0  # the last segment the current snapshot covers
        self._tail_bytes = 0  # in segments since the snapshot
        self._snapshot_bytes = 0
        self._waiting: asyncio.Future[None] | None = None  # sync()s for the next write
        self._writer: asyncio.Task[None] | None = None
        self._writing: set[str] = set()  # the calls whose records the writer is writing
        self._lazy: asyncio.TimerHandle | None = None  # a write nobody waits for, soon
        self._compactor: asyncio.Task[None] | None = None
        self.bytes_written = 0  # for stats()
        self.segments_written = 0

    # -- reading, once, at start --------------------------------------------------------

    def load(self) -> list[Record]:
        """The snapshot's records then the segments' after it, in order."""
        records: list[Record] = []
        head = kv.get(self._prefix + "head")
        if head is not None:
            self._generation, self._covered, chunks = pickle.loads(head)
            for index in range(chunks):
                blob = kv.get(self._chunk_key(self._generation, index))
                if blob is None:
                    raise RuntimeError(f"journal snapshot chunk {index} is missing")
                records += pickle.loads(blob)
                self._snapshot_bytes += len(blob)
        self._seq = self._covered
        for key in sorted(kv.keys(self._prefix + "seg:")):
            seq = int(key.rsplit(":", 1)[1])
            if seq <= self._covered:
                continue  # left by a compaction that stopped before deleting it
            blob = kv.get(key)
            if blob is not None:
                records += pickle.loads(blob)
                self._tail_bytes += len(blob)
            self._seq = max(self._seq, seq)
        return records

    # -- writing ------------------------------------------------------------------------

    async def sync(self) -> None:
        """Return once every change made before this call is in the journal."""
        if not self.busy():
            return  # nothing changed, nothing on its way
        if self._waiting is None:
            self._waiting = asyncio.get_running_loop().create_future()
        waiting = self._waiting
        self._write()
        await asyncio.shield(waiting)

    def busy(self) -> bool:
        """Whether some change is not in the journal yet."""
        return self._writer is not None or self._source.has_changes()

    def pending(self, call_ids: Iterable[str]) -> bool:
        """Whether a change to one of ``call_ids`` is not in the journal yet."""
        changed = self._source.is_changed
        return any(i in self._writing or changed(i) for i in call_ids)

    def nudge(self) -> None:
        """Make sure what changed is written within ``LAZY_WRITE_S`` (nobody waits)."""
        if self._lazy is None and self._writer is None and self._source.has_changes():
            loop = asyncio.get_running_loop()
            self._lazy = loop.call_later(LAZY_WRITE_S, self._write)

    def _write(self) -> None:
        """Start a write of what changed, unless one is under way."""
        if self._lazy is not None:
            self._lazy.cancel()
            self._lazy = None
        if self._writer is None and self._source.has_changes():
            self._writer = asyncio.get_running_loop().create_task(self._write_forever())

    async def _write_forever(self) -> None:
        try:
            while True:
                waiting, self._waiting = self._waiting, None
                records, removed = self._source.take_changes()
                if records or removed:
                    self._writing = {record[0] for record in records}
                    await self._write_segment([*records, *removed])
                    self._writing = set()
                if waiting is not None:
                    waiting.set_result(None)
                if self._waiting is None:
                    break  # nobody asked for more meanwhile; the next change nudges
            self._maybe_compact()
        finally:
            self._writer = None
            self._writing = set()
        self.nudge()  # changes made during the last write that nobody waited for

    async def _write_segment(self, batch: list[Record]) -> None:
        for part in _cut(batch):
            self._seq += 1
            blob = pickle.dumps(part, protocol=5)
            await _put(self._segment_key(self._seq), blob)
            self._tail_bytes += len(blob)
            self.bytes_written += len(blob)
            self.segments_written += 1

    # -- compaction ---------------------------------------------------------------------

    def _maybe_compact(self) -> None:
        if self._tail_bytes >= max(COMPACT_MIN_BYTES, self._snapshot_bytes):
            self._compacting()

    async def compact(self) -> None:
        """Write a snapshot of every tracked call, then drop the segments it covers
        (or wait for the compaction under way)."""
        await asyncio.shield(self._compacting())

    def _compacting(self) -> asyncio.Task[None]:
        if self._compactor is None:
            self._compactor = asyncio.get_running_loop().create_task(self._compact())
        return self._compactor

    async def _compact(self) -> None:
        try:
            covered = self._seq  # every segment up to here is in the book already
            tail_at_start = self._tail_bytes
            generation = self._generation + 1
            chunks = 0
            size = 0
            for part in _cut(self._source.snapshot()):
                blob = pickle.dumps(part, protocol=5)
                await _put(self._chunk_key(generation, chunks), blob)
                chunks += 1
                size += len(blob)
                await asyncio.sleep(0)  # let spawns and gets in between chunks
            await _put(self._prefix + "head", pickle.dumps((generation, covered, chunks)))
            old_generation, old_covered = self._generation, self._covered
            self._generation, self._covered = generation, covered
            self._snapshot_bytes = size
            self._tail_bytes -= tail_at_start
            self.bytes_written += size
            await kv.delete_async(f"{self._prefix}snap:{old_generation:08d}:", by_prefix=True)
            for seq in range(old_covered + 1, covered + 1):
                await kv.delete_async(self._segment_key(seq))
        except Exception:
            logger.exception("journal compaction failed; the segments stay")
        finally:
            self._compactor = None

    def size(self) -> dict[str, int]:
        return {
            "journal_snapshot_bytes": self._snapshot_bytes,
            "journal_tail_bytes": self._tail_bytes,
            "journal_bytes_written": self.bytes_written,
            "journal_segments_written": self.segments_written,
        }

    def _segment_key(self, seq: int) -> str:
        return f"{self._prefix}seg:{seq:016d}"

    def _chunk_key(self, generation: int, index: int) -> str:
        return f"{self._prefix}snap:{generation:08d}:{index:06d}"


def _cut(records: Iterable[Record]) -> Iterator[list[Record]]:
    """``records`` in lists of about CHUNK_BYTES (measured by their byte fields)."""
    part: list[Record] = []
    size = 0
    for record in records:
        part.append(record)
        size += _weight(record)
        if size >= CHUNK_BYTES:
            yield part
            part, size = [], 0
    if part:
        yield part


def _weight(record: Record) -> int:
    if isinstance(record, str):
        return len(record)
    return 200 + sum(len(field) for field in record if isinstance(field, bytes))


async def _put(key: str, blob: bytes) -> None:
    while True:
        try:
            await kv.put_async(key, blob)
            return
        except Exception as exc:
            logger.warning("journal write failed (%s); trying again", exc)
            await asyncio.sleep(RETRY_WRITE_S)


def next_epoch(shard: int) -> int:
    """Count one more start of registry ``shard`` in the GCS; return the new count
    (written into the ids it issues)."""
    key = f"{KV_REGISTRY_EPOCH_PREFIX}{shard}"
    previous = kv.get(key)
    epoch = int(previous) + 1 if previous else 1
    kv.put(key, str(epoch).encode())
    return epoch
