"""How the registry answers about calls: waiting for them to end, and what each
answer says (the result's ref or its inline bytes, the failure, or why an id is not
tracked). An end is told only once the journal holds it."""

from __future__ import annotations

import asyncio
import contextlib
import time

from rayfn.records import CallGraphNode, CallInfo, CallStatus
from rayfn.runtime.book import Book
from rayfn.runtime.expiry import expires_at
from rayfn.runtime.journal import Journal
from rayfn.runtime.protocol import Polled, PollMode
from rayfn.runtime.records import CallOutcome


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

    async def poll(self, call_ids: list[str], timeout: float | None, mode: PollMode) -> Polled:
        """Where calls stand, after waiting up to ``timeout`` seconds (None: as long as
        it takes, 0: not at all): for the first call (``FIRST``: and for those of the
        others that have finished by then, so a client that spawned many fetches them
        in few trips), for all of them (``ALL``), or until one has finished (``ANY``:
        for those that have). A finished call comes with its result; one that is no
        longer tracked counts as finished (its outcome says EXPIRED, LOST or unknown)."""
        if timeout != 0:
            await self._wait(call_ids, timeout, mode)
        await self._settled(call_ids)
        if mode is PollMode.ALL:
            return {i: self._outcome(i) for i in call_ids}
        done = {i: self._outcome(i) for i in call_ids if not self._is_open(i)}
        if mode is PollMode.FIRST and call_ids[0] not in done:
            done[call_ids[0]] = self._outcome(call_ids[0])
        return done

    async def _wait(self, call_ids: list[str], timeout: float | None, mode: PollMode) -> None:
        if mode is PollMode.FIRST:
            await self._wait_one(call_ids[0], timeout)
        elif mode is PollMode.ALL:
            deadline = None if timeout is None else time.monotonic() + timeout
            for call_id in call_ids:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if left != 0:
                    await self._wait_one(call_id, left)
        elif call_ids and all(self._is_open(i) for i in call_ids):
            waiters = [asyncio.ensure_future(self._wait_one(i, None)) for i in call_ids]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

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

    async def _wait_one(self, call_id: str, timeout: float | None) -> None:
        if not self._is_open(call_id):
            return
        event = self._waiters.setdefault(call_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def _settled(self, call_ids: list[str]) -> None:
        """Return once the journal holds what the answer is about to tell of
        ``call_ids``: never tell a state (an end above all) the journal lacks. One
        write covers them all; a call that changes meanwhile takes one more."""
        while self._journal.pending(call_ids):
            await self._journal.sync()
