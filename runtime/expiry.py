"""Result retention: when a finished call's result ages out, and what is kept after.

Pure bookkeeping, no Ray: the registry feeds it finished calls and asks it which
are due. Each call costs O(log n) (a deadline heap), never a scan of all calls.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator


def expires_at(finished_at: float, result_ttl: float) -> float:
    """The moment a result finished at ``finished_at`` stops being retrievable."""
    return finished_at + result_ttl


class ExpiryQueue:
    """Call ids ordered by the deadline of their result.

    >>> q = ExpiryQueue(); q.push("fc-a", 10.0); q.push("fc-b", 5.0)
    >>> list(q.pop_due(now=7.0))
    ['fc-b']
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, call_id: str, deadline: float) -> None:
        heapq.heappush(self._heap, (deadline, call_id))

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> Iterator[str]:
        """Yield (and forget) the ids whose deadline is at or before ``now``,
        at most ``limit`` of them so a caller can spread a burst over several turns."""
        popped = 0
        while self._heap and self._heap[0][0] <= now and (limit is None or popped < limit):
            popped += 1
            yield heapq.heappop(self._heap)[1]


class Tombstones:
    """The ids of expired calls, so a late ``get`` answers "expired", not "not found".

    Bounded: past ``capacity`` the oldest tombstone is forgotten (that id then answers
    "not found"), so memory stays flat however long the registry runs.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._ids

    def __iter__(self) -> Iterator[str]:
        """Oldest first."""
        return iter(list(self._ids))

    def add(self, call_id: str) -> None:
        if self._capacity == 0:
            return
        self._ids[call_id] = None
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
