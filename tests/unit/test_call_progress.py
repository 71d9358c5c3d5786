"""rayfn.set_progress: what it takes, and the book keeping it (pure: no cluster)."""

from __future__ import annotations

import pickle

import pytest

import rayfn
from rayfn.exception import InvalidError
from rayfn.records import CallStatus, Progress
from rayfn.runtime.book import Book
from rayfn.runtime.calls import Call
from rayfn.runtime.commands import Launch, Policy
from rayfn.runtime.identity import FunctionVersion


def test_progress_is_a_fraction_or_a_small_dict() -> None:
    from rayfn._call_progress import checked_message, checked_progress

    assert checked_progress(0) == 0.0 and checked_progress(1) == 1.0
    assert checked_progress({"done": 3, "of": 10}) == {"done": 3, "of": 10}
    for bad, says in [
        (1.5, "from 0 to 1"),
        (float("nan"), "from 0 to 1"),
        (True, "not bool"),
        ("half", "not str"),
        ({"blob": "x" * 5000}, "over 2048"),
        ({"when": object()}, "JSON-able"),
    ]:
        with pytest.raises(InvalidError, match=says):
            checked_progress(bad)
    with pytest.raises(InvalidError, match="at most 500"):
        checked_message("m" * 501)
    with pytest.raises(InvalidError, match="runs in a call"):
        rayfn.set_progress(0.5)  # here, outside any call


def test_the_book_keeps_a_running_calls_progress_in_its_journal_record() -> None:
    policy = Policy(version=FunctionVersion("app", "f", 1), label="app.f")
    book = Book(max_tombstones=10)
    book.accept("fc-1", ("app", "f"), b"args", 60.0, 0.0)
    (launch,) = [c for c in book.dispatch(policy, 1.0) if isinstance(c, Launch)]
    book.progress("fc-1", 1, Progress(0.4, "loading", 2.0))
    book.progress("fc-1", 2, Progress(0.9, "a stale attempt", 3.0))  # not its latest
    assert book.calls["fc-1"].info().progress == Progress(0.4, "loading", 2.0)
    record = pickle.loads(pickle.dumps(book.calls["fc-1"].record()))
    assert Call.from_record(record, None).progress == Progress(0.4, "loading", 2.0)
    assert Call.from_record(record[:15], None).progress is None  # a journal from before
    book.cancel("fc-1", 4.0)
    book.progress("fc-1", 1, Progress(1.0, "too late", 5.0))
    call = book.calls["fc-1"]
    assert call.status is CallStatus.CANCELLED
    assert call.progress == Progress(0.4, "loading", 2.0)
    assert launch.calls[0][0] == "fc-1"


def test_a_watch_tells_each_status_new_progress_and_the_end_once() -> None:
    from rayfn.records import CallEventKind, CallInfo, call_event

    def info(status: CallStatus, progress: Progress | None = None) -> CallInfo:
        return CallInfo("fc-1", "app", "f", status, 0.0, progress=progress)

    queued, running = info(CallStatus.QUEUED), info(CallStatus.RUNNING)
    half = info(CallStatus.RUNNING, Progress(0.5))
    done = info(CallStatus.SUCCEEDED, Progress(0.5))
    assert call_event(None, queued) is CallEventKind.STATUS
    assert call_event(queued, queued) is None
    assert call_event(queued, running) is CallEventKind.STATUS
    assert call_event(running, half) is CallEventKind.PROGRESS
    assert call_event(half, half) is None
    assert call_event(half, done) is CallEventKind.END
    assert call_event(None, done) is CallEventKind.END
    assert call_event(done, info(CallStatus.EXPIRED)) is None  # ended once
