"""The spawner's sender thread, with a plain send function in place of the registry
round trip: cancelled calls are dropped, not sent; a failed batch fails only its own
calls; a dead sender is replaced by the next submit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from rayfn._spawner import Spawner
from rayfn.exception import NotFoundError
from rayfn.runtime.protocol import Submission
from rayfn.runtime.records import NotDeployed

WAIT_S = 10.0


class Registry:
    """Answers each request with an id made of its blob. ``hold()`` keeps the next
    batch waiting (so calls pile up behind it); ``fail_next`` makes the next batch
    raise instead."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.batches = 0
        self.fail_next: list[BaseException] = []
        self._gate = threading.Event()
        self._gate.set()
        self._holding = threading.Event()

    def hold(self) -> None:
        self._gate.clear()

    def wait_until_held(self) -> None:
        assert self._holding.wait(WAIT_S), "no batch reached the registry"

    def release(self) -> None:
        self._gate.set()

    def send(self, requests: list[Submission]) -> list[str | NotDeployed]:
        self.batches += 1
        if not self._gate.is_set():
            self._holding.set()
            assert self._gate.wait(WAIT_S)
            self._holding.clear()
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.sent += [request.args for request in requests]
        return [
            NotDeployed("gone", None, ()) if blob == b"refused" else f"fc-{blob.decode()}"
            for blob in (request.args for request in requests)
        ]


def _submit(spawner: Spawner, blob: str) -> Future[str]:
    return spawner.submit("app", "f", blob.encode())


def test_calls_cancelled_while_queued_are_dropped_and_the_rest_answered() -> None:
    registry = Registry()
    spawner = Spawner(registry.send)
    registry.hold()
    first = _submit(spawner, "0")
    registry.wait_until_held()  # "0" is on its way; the next ones queue behind it
    queued = [_submit(spawner, str(i)) for i in range(1, 6)]
    assert queued[0].cancel() and queued[2].cancel()  # abandoned spawn.aio calls
    registry.release()
    assert first.result(WAIT_S) == "fc-0"
    assert [queued[i].result(WAIT_S) for i in (1, 3, 4)] == ["fc-2", "fc-4", "fc-5"]
    assert queued[0].cancelled() and queued[2].cancelled()
    assert registry.sent == [b"0", b"2", b"4", b"5"]  # the cancelled ones never went
    assert _submit(spawner, "6").result(WAIT_S) == "fc-6"  # the sender lives on


def test_a_call_taken_by_the_sender_cannot_be_cancelled_and_gets_its_answer() -> None:
    registry = Registry()
    spawner = Spawner(registry.send)
    registry.hold()
    taken = _submit(spawner, "0")
    registry.wait_until_held()
    assert taken.cancel() is False  # it is running: sent, and accounted for
    registry.release()
    assert taken.result(WAIT_S) == "fc-0"


def test_a_failed_batch_fails_its_own_calls_and_the_next_goes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry()
    registry.fail_next.append(ConnectionError("registry unreachable"))
    spawner = Spawner(registry.send)
    with caplog.at_level(logging.WARNING, logger="rayfn._spawner"):
        failed = _submit(spawner, "0")
        with pytest.raises(ConnectionError, match="registry unreachable"):
            failed.result(WAIT_S)
    assert "sending 1 spawned calls failed (ConnectionError" in caplog.text
    refused = _submit(spawner, "refused")
    with pytest.raises(NotFoundError, match="gone"):
        refused.result(WAIT_S)
    assert _submit(spawner, "1").result(WAIT_S) == "fc-1"


def test_claim_drops_a_cancelled_call_and_hands_over_a_queued_one_running() -> None:
    registry = Registry()
    spawner = Spawner(registry.send)
    with spawner._lock:  # the sender cannot take anything meanwhile
        cancelled, mine = _submit(spawner, "1"), _submit(spawner, "2")
        cancelled.cancel()
        assert spawner.claim(cancelled) is None  # dropped: never sent
        assert spawner.claim(mine) == Submission("app", "f", b"2", None)
    assert mine.running() and not mine.cancel()  # its get sends it and settles it
    mine.set_result("fc-2")
    assert spawner.flush(WAIT_S)
    assert registry.sent == []
    assert _submit(spawner, "3").result(WAIT_S) == "fc-3"


def test_claim_refuses_a_call_behind_a_batch_in_flight() -> None:
    registry = Registry()
    spawner = Spawner(registry.send)
    registry.hold()
    _submit(spawner, "0")
    registry.wait_until_held()
    behind = _submit(spawner, "1")
    assert spawner.claim(behind) is None  # it would overtake "0"
    registry.release()
    assert behind.result(WAIT_S) == "fc-1"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_sender_is_replaced_on_the_next_submit_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only a BaseException (SystemExit here) gets past the sender's handler; the
    calls of that batch still fail, and the ones queued behind it are sent by the
    next sender."""
    registry = Registry()
    spawner = Spawner(registry.send)
    with caplog.at_level(logging.WARNING, logger="rayfn._spawner"):
        for round_ in range(2):
            registry.hold()
            registry.fail_next.append(SystemExit(f"sender killed {round_}"))
            doomed = _submit(spawner, f"doomed{round_}")
            registry.wait_until_held()
            waiting = _submit(spawner, f"waiting{round_}")
            registry.release()
            with pytest.raises(SystemExit):
                doomed.result(WAIT_S)
            _wait_until(lambda: not spawner._thread.is_alive())
            assert not waiting.done()
            after = _submit(spawner, f"after{round_}")
            assert waiting.result(WAIT_S) == f"fc-waiting{round_}"
            assert after.result(WAIT_S) == f"fc-after{round_}"
    warnings = [r for r in caplog.records if "sender thread died" in r.getMessage()]
    assert len(warnings) == 1, caplog.text


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
