"""How the registry answers about calls: waiting for them to end, and what each
answer says (the result's ref or its inline bytes, the failure, or why an id is not
tracked). An end is told only once the journal holds it."""

from __future__ import annotations

import asyncio
import contextlib
import time

from rayfn.runtime.book import Book
from rayfn.runtime.expiry import expires_at
from rayfn.runtime.journal import Journal
from rayfn.runtime.records import CallGraphNode, CallInfo, CallOutcome, CallStatus


class Answers:
    def __init__(self, book: Book, journal: Journal, shard: int, epoch: int) -> None:
        self._book = book
        self._journal = journal
        self._shard = shard
        self._epoch = epoch
        self._waiters: dict[str, asyncio.Event] = {}  # made only when somebody waits

    def wake(self, call_id: str) -> None:
        """The call ended: whoever waits for it looks again."""
        event = self._waiters.pop(call_id, None)
        if event is not None:
            event.set()

    async def get(self, call_id: str, timeout: float | None) -> CallOutcome:
        """Wait up to ``timeout`` seconds (None: forever, 0: not at all) for a call to
        finish, then say where it stands; a finished call comes with its result."""
        if self._is_open(call_id) and timeout != 0:
            await self._wait(call_id, timeout)
        await self._settled([call_id])
        return self._outcome(call_id)

    async def get_with_others(
        self, call_id: str, timeout: float | None, others: list[str]
    ) -> tuple[CallOutcome, dict[str, CallOutcome]]:
        """``get`` for one call, plus the answers for those of ``others`` that have
        finished by then: a client that spawned many calls fetches them in few trips."""
        if self._is_open(call_id) and timeout != 0:
            await self._wait(call_id, timeout)
        await self._settled([call_id, *others])
        calls = self._book.calls
        done = [i for i in others if i in calls and calls[i].status.is_terminal]
        return self._outcome(call_id), {i: self._outcome(i) for i in done}

    async def get_many(self, call_ids: list[str], timeout: float | None) -> list[CallOutcome]:
        """Wait until all have finished (or the timeout passes); answer for each."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for call_id in call_ids:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._is_open(call_id) and left != 0:
                await self._wait(call_id, left)
        await self._settled(call_ids)
        return [self._outcome(call_id) for call_id in call_ids]

    async def wait_any(self, call_ids: list[str], timeout: float | None) -> list[str]:
        """The ids among ``call_ids`` that have finished, waiting (up to ``timeout``)
        until at least one has."""
        if call_ids and timeout != 0 and all(self._is_open(i) for i in call_ids):
            waiters = [asyncio.ensure_future(self._wait(i, None)) for i in call_ids]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        await self._settled(call_ids)
        return [i for i in call_ids if not self._is_open(i)]

    async def describe(self, call_id: str) -> CallInfo | CallStatus | None:
        """The status record of a call; for one no longer tracked, EXPIRED or LOST
        (``Book.gone``), or None for an id never accepted."""
        await self._settled([call_id])
        outcome = self._outcome(call_id)
        call = self._book.calls.get(call_id)
        return call.info() if call is not None else outcome.status

    def call_graph(self, call_id: str) -> CallGraphNode | CallStatus | None:
        """A call with the calls spawned from inside it, recursively."""
        call = self._book.calls.get(call_id)
        return self._gone(call_id) if call is None else self._book.graph(call)

    def _outcome(self, call_id: str) -> CallOutcome:
        """Where a call stands now (after ``_settled``: its end, if any, is journaled)."""
        book = self._book
        call = book.calls.get(call_id)
        if call is None:
            return CallOutcome(self._gone(call_id))
        if book.expire_if_due(call, time.time()):
            return CallOutcome(CallStatus.EXPIRED)
        deadline = expires_at(call.finished_at, call.result_ttl) if call.finished_at else None
        return CallOutcome(call.status, call.payload, call.failure, call.inline, deadline)

    def _gone(self, call_id: str) -> CallStatus | None:
        return self._book.gone(call_id, self._shard, self._epoch)

    def _is_open(self, call_id: str) -> bool:
        call = self._book.calls.get(call_id)
        return call is not None and not call.status.is_terminal

    async def _wait(self, call_id: str, timeout: float | None) -> None:
        event = self._waiters.setdefault(call_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def _settled(self, call_ids: list[str]) -> None:
        """Return once the journal holds the end of every call among ``call_ids``
        that has ended: never tell of an end the journal lacks. One write covers
        them all; a call that ends meanwhile takes one more."""
        calls = self._book.calls
        ended = {i for i in call_ids if i in calls and calls[i].status.is_terminal}
        while ended and self._journal.busy():
            await self._journal.sync()
            now_ended = {i for i in call_ids if i in calls and calls[i].status.is_terminal}
            if now_ended == ended:
                return
            ended = now_ended
