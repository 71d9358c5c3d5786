"""The client's fetched-ahead answers: served once, fresh, never past expiry."""

import time

import pytest

from rayfn import _prefetch
from rayfn.records import CallStatus
from rayfn.runtime.records import CallOutcome


@pytest.fixture(autouse=True)
def _empty() -> None:
    _prefetch._unfetched.clear()
    _prefetch._answers.clear()


def test_get_asks_about_other_unfetched_calls_and_keeps_finished_answers() -> None:
    _prefetch.spawned(["a", "b", "c"])
    assert _prefetch.others("a") == ["b", "c"]
    done = CallOutcome(CallStatus.SUCCEEDED, inline=b"x", expires_at=time.time() + 60)
    _prefetch.keep("a", done, {"b": done})
    assert _prefetch.take("b") == done
    assert _prefetch.take("b") is None  # served once
    assert _prefetch.others("c") == []  # a and b were fetched


def test_a_pending_call_stays_unfetched() -> None:
    _prefetch.spawned(["a", "b"])
    _prefetch.others("a")
    _prefetch.keep("a", CallOutcome(CallStatus.RUNNING), {})
    assert "a" in _prefetch.others("b")


def test_answers_past_expiry_are_not_served() -> None:
    _prefetch.keep(
        "z",
        CallOutcome(CallStatus.RUNNING),
        {"old": CallOutcome(CallStatus.SUCCEEDED, inline=b"x", expires_at=time.time() - 1)},
    )
    assert _prefetch.take("old") is None


def test_batches_are_bounded() -> None:
    _prefetch.spawned([f"id{i}" for i in range(1000)])
    assert len(_prefetch.others("id0")) == _prefetch.BATCH


def test_a_get_that_never_came_back_leaves_its_call_to_be_asked_about() -> None:
    """A cancelled get.aio (or a failed round trip) asked for others, then got nothing
    to keep: its own call stays on the list for the next get."""
    _prefetch.spawned(["a", "b"])
    assert _prefetch.others("a") == ["b"]  # ... and the get is cancelled here
    assert _prefetch.others("b") == ["a"]
