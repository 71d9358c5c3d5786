"""The call book (runtime/book.py) driven with a fake clock: no Ray, no actor. Each
test plays the registry's part, feeding events and reading the commands back."""

from __future__ import annotations

import ast
import pathlib
import pickle
from typing import Any

import pytest

from rayfn.records import CallStatus, FailureKind
from rayfn.runtime.book import Book
from rayfn.runtime.calls import INTERRUPTED
from rayfn.runtime.commands import (
    Command,
    Finished,
    Kill,
    Launch,
    Policy,
    Pump,
    SetTimer,
    Warn,
)
from rayfn.runtime.constants import PACK_MAX_CALLS
from rayfn.runtime.identity import FunctionVersion
from rayfn.runtime.protocol import CallOptions, CallQuery
from rayfn.runtime.records import AttemptMeta, RemoteFailure
from rayfn.runtime.retries import RetryPolicy

KEY = ("app", "f")
T0 = 1_000.0


def policy(**options: Any) -> Policy:
    return Policy(version=FunctionVersion("app", "f", 1), label="app.f", **options)


def book_with(*blobs: bytes, ttl: float = 60.0, now: float = T0) -> Book:
    book = Book(max_tombstones=100)
    for index, blob in enumerate(blobs):
        book.accept(f"fc-{index}", KEY, blob, ttl, now)
    return book


def launches(commands: list[Command]) -> list[Launch]:
    return [c for c in commands if isinstance(c, Launch)]


def of(commands: list[Command], kind: type) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def ok(at: float, value: bytes = b"v", started: float | None = None) -> AttemptMeta:
    return AttemptMeta(True, started if started is not None else at, at, inline=value)


def raised(at: float, type_name: str = "builtins.ValueError") -> AttemptMeta:
    failure = RemoteFailure(type_name, "bad", "tb", None)
    return AttemptMeta(False, at, at, failure=failure)


CRASH = RemoteFailure.of_kind(FailureKind.CRASHED, "worker died")


def test_the_book_imports_no_ray() -> None:
    """The machine and the modules it reads are testable without a cluster."""
    runtime = pathlib.Path(__file__).parents[2] / "runtime"
    for name in ("book", "commands", "calls", "expiry", "packing", "retries", "ids", "records"):
        tree = ast.parse((runtime / f"{name}.py").read_text())
        for node in tree.body:  # what importing the module runs
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "ray" for a in node.names), name
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "ray", name


def test_max_containers_launches_in_fifo_order_as_slots_free() -> None:
    book = book_with(b"0", b"1", b"2", b"3")
    limited = policy(max_containers=2)
    first = launches(book.dispatch(limited, T0))
    assert [launch.calls[0][0] for launch in first] == ["fc-0", "fc-1"]
    assert book.calls["fc-2"].status is CallStatus.QUEUED
    assert launches(book.dispatch(limited, T0)) == []  # still full
    ended = book.launch_ended(first[1], [ok(T0 + 1)], None, None, T0 + 1)
    assert Pump(KEY, limited) in ended and Finished("fc-1") in ended
    nxt = launches(book.dispatch(limited, T0 + 1))
    assert [launch.calls[0][:2] for launch in nxt] == [("fc-2", 1)]


def test_success_answers_then_expires_into_a_tombstone() -> None:
    book = book_with(b"x", ttl=10)
    (launch,) = launches(book.dispatch(policy(), T0))
    commands = book.launch_ended(launch, [ok(T0 + 2, b"42")], None, None, T0 + 2)
    assert Finished("fc-0") in commands
    call = book.calls["fc-0"]
    assert (call.status, call.inline, call.args) == (CallStatus.SUCCEEDED, b"42", None)
    assert book.expire_due(T0 + 11.9) == 0
    assert book.expire_due(T0 + 12) == 1
    assert "fc-0" not in book.calls
    assert book.gone("fc-0", 0, 1) is CallStatus.EXPIRED


def test_a_raised_call_retries_after_its_backoff_first_in_line() -> None:
    retries = RetryPolicy(max_retries=2, initial_delay=1.0, backoff_coefficient=3.0)
    p = policy(retries=retries)
    book = book_with(b"a", b"b")
    first, _second = launches(book.dispatch(p, T0))
    commands = book.launch_ended(first, [raised(T0 + 1)], None, None, T0 + 1)
    assert SetTimer("fc-0", T0 + 2.0) in commands
    assert book.calls["fc-0"].status is CallStatus.RETRYING
    book.accept("fc-9", KEY, b"late", 60, T0 + 1.5)
    assert of(book.timer_fired("fc-0", 0.0), Pump) == [Pump(KEY, p)]
    assert [c.call_id for c in book.queues[KEY]] == ["fc-0", "fc-9"]
    (again, _) = launches(book.dispatch(p, T0 + 2))
    assert again.calls[0][:2] == ("fc-0", 2)
    # The second retry waits initial_delay * 3.
    commands = book.launch_ended(again, [raised(T0 + 2)], None, None, T0 + 2)
    assert SetTimer("fc-0", T0 + 5.0) in commands
    book.timer_fired("fc-0", 0.0)
    (third,) = launches(book.dispatch(p, T0 + 5))
    assert Finished("fc-0") in book.launch_ended(third, [raised(T0 + 6)], None, None, T0 + 6)
    call = book.calls["fc-0"]
    assert call.status is CallStatus.FAILED and len(call.attempts) == 3


def test_retry_on_filters_exceptions_but_a_crash_is_always_retried() -> None:
    p = policy(retries=RetryPolicy(max_retries=1, retry_on=("builtins.OSError",)))
    book = book_with(b"a", b"b")
    first, second = launches(book.dispatch(p, T0))
    book.launch_ended(first, [raised(T0)], None, None, T0)
    assert book.calls["fc-0"].status is CallStatus.FAILED
    book.launch_ended(second, None, CRASH, None, T0)
    assert book.calls["fc-1"].status is CallStatus.RETRYING


def test_timeout_counts_from_the_start_report_and_kills_the_attempt() -> None:
    p = policy(timeout=5.0)
    book = book_with(b"a")
    (launch,) = launches(book.dispatch(p, T0))
    assert book.started("fc-0", 1, T0 + 3, p) == [SetTimer("fc-0", T0 + 8)]
    assert book.calls["fc-0"].status is CallStatus.RUNNING
    assert book.timer_fired("fc-0", 0.0) == [Kill("fc-0")]
    book.launch_ended(launch, None, CRASH, None, T0 + 8)
    call = book.calls["fc-0"]
    assert call.status is CallStatus.TIMED_OUT
    assert call.failure is not None and "timeout of 5 s" in call.failure.message
    assert call.attempts[0].outcome == FailureKind.TIMED_OUT.value


def test_startup_timeout_kills_only_a_call_that_has_not_started() -> None:
    p = policy(startup_timeout=2.0)
    book = book_with(b"a", b"b")
    commands = book.dispatch(p, T0)
    assert SetTimer("fc-0", T0 + 2) in commands and SetTimer("fc-1", T0 + 2) in commands
    first, _second = launches(commands)
    book.started("fc-1", 1, T0 + 1, p)  # replaces its startup timer (no timeout set)
    assert book.timer_fired("fc-0", 0.0) == [Kill("fc-0")]
    assert book.timer_fired("fc-1", 0.0) == []
    book.launch_ended(first, None, CRASH, None, T0 + 2)
    call = book.calls["fc-0"]
    assert call.status is CallStatus.FAILED
    assert call.failure is not None and call.failure.kind is FailureKind.NOT_STARTED


def test_cancel_in_every_state() -> None:
    p = policy(retries=RetryPolicy(max_retries=3), max_containers=3)
    book = book_with(b"pending", b"running", b"retrying", b"queued")
    pending_launch, running_launch, retry_launch = launches(book.dispatch(p, T0))
    book.started("fc-1", 1, T0, p)
    book.launch_ended(retry_launch, [raised(T0)], None, None, T0)
    assert book.calls["fc-2"].status is CallStatus.RETRYING
    # Pending and running: the attempt is killed.
    assert Kill("fc-0") in book.cancel("fc-0", T0)
    assert Kill("fc-1") in book.cancel("fc-1", T0)
    # Retrying: its timer stops, nothing to kill.
    commands = book.cancel("fc-2", T0)
    assert SetTimer("fc-2", None) in commands and of(commands, Kill) == []
    # Queued: ends at once and is skipped when its turn comes.
    assert of(book.cancel("fc-3", T0), Kill) == []
    for call_id in ("fc-0", "fc-1", "fc-2", "fc-3"):
        assert book.calls[call_id].status is CallStatus.CANCELLED
        assert book.cancel(call_id, T0) == []  # finished: left as it is
    # The killed tasks end later: nothing changes, the slots free.
    book.launch_ended(pending_launch, None, CRASH, None, T0 + 1)
    book.launch_ended(running_launch, None, CRASH, None, T0 + 1)
    assert book.calls["fc-1"].status is CallStatus.CANCELLED
    assert book.running[KEY] == 0
    assert launches(book.dispatch(p, T0 + 1)) == []  # the cancelled queued call


def _packed_book(count: int) -> tuple[Book, Policy]:
    p = policy(can_pack=True)
    book = book_with(*[str(i).encode() for i in range(count)])
    book.packing.observe(p.version, 0.001)
    return book, p


def test_short_calls_are_packed_and_the_unstarted_go_back_first_in_order() -> None:
    book, p = _packed_book(8 * PACK_MAX_CALLS)
    pack = launches(book.dispatch(p, T0))[0]
    assert len(pack.calls) == PACK_MAX_CALLS and book.packs >= 1
    first_ids = [c[0] for c in pack.calls]
    # The pack ran its first three, then stopped (its time budget).
    metas = [ok(T0 + 1, str(i).encode()) for i in range(3)]
    book.launch_ended(pack, metas, None, None, T0 + 1)
    assert all(book.calls[i].status is CallStatus.SUCCEEDED for i in first_ids[:3])
    unstarted = first_ids[3:]
    assert [c.call_id for c in list(book.queues[KEY])[: len(unstarted)]] == unstarted
    assert all(book.calls[i].attempts == [] for i in unstarted)


def test_a_cancelled_packed_call_lets_its_pack_run_on() -> None:
    book, p = _packed_book(8 * PACK_MAX_CALLS)
    pack = launches(book.dispatch(p, T0))[0]
    waiting = pack.calls[5][0]
    assert of(book.cancel(waiting, T0), Kill) == []
    book.launch_ended(pack, [ok(T0 + 1)] * PACK_MAX_CALLS, None, None, T0 + 1)
    assert book.calls[waiting].status is CallStatus.CANCELLED


def test_a_crashed_pack_fails_its_running_call_and_turns_packing_off() -> None:
    book, p = _packed_book(8 * PACK_MAX_CALLS)
    pack = launches(book.dispatch(p, T0))[0]
    ids = [c[0] for c in pack.calls]
    # The pack reported its first call finished and the second running, then died.
    book.finished_early(ids[0], 1, ok(T0), p, T0)
    book.started(ids[1], 1, T0, p)
    commands = book.launch_ended(pack, None, CRASH, None, T0 + 1)
    assert of(commands, Warn)
    assert book.calls[ids[0]].status is CallStatus.SUCCEEDED
    assert book.calls[ids[1]].status is CallStatus.FAILED
    assert all(book.calls[i].status is CallStatus.QUEUED for i in ids[2:])
    assert all(len(launch.calls) == 1 for launch in launches(book.dispatch(p, T0 + 1)))


def test_a_refused_launch_fails_its_calls() -> None:
    book = book_with(b"a")
    (launch,) = launches(book.dispatch(policy(), T0))
    assert Finished("fc-0") in book.launch_failed(launch, CRASH, T0)
    assert book.calls["fc-0"].status is CallStatus.FAILED and book.running[KEY] == 0


def test_a_pooled_method_launches_only_as_many_as_its_pool_has_room_for() -> None:
    p = policy(pooled=True)
    book = book_with(b"a", b"b", b"c")
    book.cancel("fc-0", T0)
    assert [launch.calls[0][0] for launch in launches(book.dispatch(p, T0, free=1))] == ["fc-1"]
    assert len(launches(book.dispatch(p, T0, free=None))) == 1


def test_queued_calls_of_a_function_that_cannot_run_fail_with_the_reason() -> None:
    book = book_with(b"a", b"b")
    why = RemoteFailure.of_kind(FailureKind.NOT_STARTED, "app is not deployed")
    assert len(of(book.drop_queue(KEY, why, T0), Finished)) == 2
    assert book.calls["fc-1"].failure == why


# -- the journal's records and restore ----------------------------------------------


def journal_of(book: Book) -> list[Any]:
    """What the registry would have written: every change, pickled as it is."""
    records, removed = book.take_changes()
    return pickle.loads(pickle.dumps([*records, *removed]))


def test_restore_answers_finished_calls_as_before_and_keeps_queue_order() -> None:
    p = policy(retries=RetryPolicy(max_retries=2, initial_delay=10.0), max_containers=3)
    book = book_with(b"done", b"retry", b"running", b"q1", b"q2", ttl=100)
    log = journal_of(book)
    done, retry, _running = launches(book.dispatch(p, T0))
    book.started("fc-2", 1, T0 + 0.5, p)
    book.launch_ended(done, [ok(T0 + 1, b"value")], None, None, T0 + 1)
    book.launch_ended(retry, [raised(T0 + 1)], None, None, T0 + 1)
    log += journal_of(book)

    again = Book(max_tombstones=100)
    commands = again.restore(log, T0 + 4)
    finished = again.calls["fc-0"]
    assert (finished.status, finished.inline, finished.finished_at) == (
        CallStatus.SUCCEEDED,
        b"value",
        T0 + 1,
    )
    assert again.expire_due(T0 + 100.9) == 0 and again.expire_due(T0 + 101) == 1
    # Backoff resumes what is left of it (due at T0 + 11).
    assert SetTimer("fc-1", T0 + 11) in commands
    # The running call runs again, first in line by age, as attempt 2.
    assert [c.call_id for c in again.queues[KEY]] == ["fc-2", "fc-3", "fc-4"]
    assert Pump(KEY, None) in commands
    (first, *_) = launches(again.dispatch(p, T0 + 4))
    assert first.calls[0][:3] == ("fc-2", 2, b"running")
    lost = again.calls["fc-2"].attempts[0]
    assert lost.outcome == INTERRUPTED
    assert again.calls["fc-2"].tries == 1  # the lost attempt does not count


def test_restore_reruns_a_large_result_and_forgets_expired_calls() -> None:
    book = book_with(b"big", b"small", ttl=5)
    big, small = launches(book.dispatch(policy(), T0))
    large = AttemptMeta(True, T0, T0 + 1)  # no inline: the result stayed in Ray
    book.launch_ended(big, [large], None, "a-ref", T0 + 1)
    book.launch_ended(small, [ok(T0 + 1)], None, None, T0 + 1)
    assert book.calls["fc-0"].payload == "a-ref"
    book.expire_due(T0 + 7)
    log = journal_of(book)
    assert "fc-1" in log and "fc-0" in log  # the removals

    again = Book(max_tombstones=100)
    again.restore(log, T0 + 8)
    assert again.gone("fc-1", 0, 1) is CallStatus.EXPIRED
    assert again.gone("fc-0", 0, 1) is CallStatus.EXPIRED


def test_a_large_result_runs_again_after_a_restart() -> None:
    book = book_with(b"big", ttl=50)
    (big,) = launches(book.dispatch(policy(), T0))
    book.launch_ended(big, [AttemptMeta(True, T0, T0 + 1)], None, "a-ref", T0 + 1)
    again = Book(max_tombstones=100)
    again.restore(journal_of(book), T0 + 2)
    (launch,) = launches(again.dispatch(policy(), T0 + 2))
    assert launch.calls[0][:3] == ("fc-0", 2, b"big")


def test_a_snapshot_and_the_tail_after_it_restore_the_same_book() -> None:
    book = book_with(b"a", b"b", b"c", ttl=100)
    first, second, _ = launches(book.dispatch(policy(), T0))
    book.launch_ended(first, [ok(T0 + 1, b"1")], None, None, T0 + 1)
    journal_of(book)  # written before the snapshot: the snapshot covers it
    snapshot = pickle.loads(pickle.dumps(list(book.snapshot())))
    book.launch_ended(second, [ok(T0 + 2, b"2")], None, None, T0 + 2)
    tail = journal_of(book)

    again = Book(max_tombstones=100)
    again.restore([*snapshot, *tail], T0 + 3)
    assert again.calls["fc-0"].inline == b"1" and again.calls["fc-1"].inline == b"2"
    assert again.calls["fc-2"].status is CallStatus.QUEUED
    assert again.calls["fc-2"].args == b"c"


@pytest.mark.parametrize("restarts", [1, 2])
def test_restoring_twice_keeps_everything(restarts: int) -> None:
    book = book_with(b"a", b"b", ttl=100)
    (launch, _) = launches(book.dispatch(policy(), T0))
    book.launch_ended(launch, [ok(T0 + 1, b"1")], None, None, T0 + 1)
    log = journal_of(book)
    for _ in range(restarts):
        book = Book(max_tombstones=100)
        book.restore(log, T0 + 2)
        log += journal_of(book)
    assert book.calls["fc-0"].inline == b"1"
    (again,) = launches(book.dispatch(policy(), T0 + 2))
    assert again.calls[0][0] == "fc-1" and again.calls[0][2] == b"b"


def test_a_spawn_token_remembers_its_calls_across_a_restore() -> None:
    book = Book(max_tombstones=100)
    for index in range(3):
        book.accept(f"fc-{index}", KEY, b"x", 60, T0, token="tok" if index < 2 else None)
    assert book.batches == {"tok": ["fc-0", "fc-1"]}
    again = Book(max_tombstones=100)
    again.restore(journal_of(book), T0)
    assert again.batches == {"tok": ["fc-0", "fc-1"]}


def test_a_packed_call_that_times_out_takes_only_itself_down() -> None:
    """Its pack is killed: the calls the pack reported finished keep their results,
    the timed-out one ends TIMED_OUT, and the ones after it go back in line."""
    book, _ = _packed_book(8 * PACK_MAX_CALLS)
    p = policy(can_pack=True, timeout=2.0)
    book.packing.observe(p.version, 0.001)
    pack = launches(book.dispatch(p, T0))[0]
    ids = [c[0] for c in pack.calls]
    book.finished_early(ids[0], 1, ok(T0), p, T0)
    assert book.started(ids[1], 1, T0, p) == [SetTimer(ids[1], T0 + 2)]
    assert book.timer_fired(ids[1], T0) == [Kill(ids[1])]
    book.launch_ended(pack, None, CRASH, None, T0 + 2)
    assert book.calls[ids[0]].status is CallStatus.SUCCEEDED
    assert book.calls[ids[1]].status is CallStatus.TIMED_OUT
    assert all(book.calls[i].status is CallStatus.QUEUED for i in ids[2:])
    assert book.packing.size(p.version, True, 8 * PACK_MAX_CALLS) > 1  # still packs


def test_a_get_past_the_deadline_answers_expired_before_the_expiry_pass() -> None:
    book = book_with(b"x", ttl=10)
    (launch,) = launches(book.dispatch(policy(), T0))
    book.launch_ended(launch, [ok(T0 + 1)], None, None, T0 + 1)
    call = book.calls["fc-0"]
    assert not book.expire_if_due(call, T0 + 10.9)
    assert book.expire_if_due(call, T0 + 11)
    assert book.gone("fc-0", 0, 1) is CallStatus.EXPIRED
    assert book.gone("fc-0-0-zzz", 0, 2) is None  # not an id of this shard's epochs


def test_listing_and_the_call_graph() -> None:
    book = book_with(b"parent")
    book.accept("fc-child", KEY, b"c", 60, T0, parent="fc-0")
    book.accept("fc-other", ("other", "g"), b"o", 60, T0)
    assert [i.call_id for i in book.listing(CallQuery(limit=10))] == [
        "fc-other",
        "fc-child",
        "fc-0",
    ]
    listed = book.listing(CallQuery("app", "f", None, 10, "fc-child"))
    assert [i.call_id for i in listed] == ["fc-0"]
    graph = book.graph(book.calls["fc-0"])
    assert [child.call_id for child in graph.children] == ["fc-child"]


def test_an_ended_app_cancels_only_its_unfinished_calls_and_says_why() -> None:
    p = policy(max_containers=1)
    book = book_with(b"done", b"running", b"queued")
    book.accept("fc-other", ("other", "f"), b"x", 60.0, T0)
    (done,) = launches(book.dispatch(p, T0))
    book.launch_ended(done, [ok(T0 + 1)], None, None, T0 + 1)
    (running,) = launches(book.dispatch(p, T0 + 1))
    book.started("fc-1", 1, T0 + 1, p)
    assert book.unfinished == {"app": 2, "other": 1}

    assert book.cancel_app("app", None, T0 + 2) == ([], 0)  # no reason given: nothing
    commands, cancelled = book.cancel_app("app", "Its client went away.", T0 + 2)
    assert cancelled == 2 and Kill("fc-1") in commands
    assert [book.calls[f"fc-{i}"].status for i in range(3)] == [
        CallStatus.SUCCEEDED,
        CallStatus.CANCELLED,
        CallStatus.CANCELLED,
    ]
    assert book.calls["fc-2"].failure.message == "Its client went away."
    assert book.calls["fc-other"].status is CallStatus.QUEUED
    assert book.unfinished["app"] == 0 and book.unfinished["other"] == 1
    assert book.cancel_app("app", "again", T0 + 3) == ([], 0)
    # The killed attempt ends later: nothing changes.
    book.launch_ended(running, None, CRASH, None, T0 + 3)
    assert book.calls["fc-1"].status is CallStatus.CANCELLED and book.unfinished["app"] == 0


def test_restore_counts_the_unfinished_calls_of_each_app() -> None:
    book = book_with(b"done", b"queued")
    (done,) = launches(book.dispatch(policy(max_containers=1), T0))
    book.launch_ended(done, [ok(T0 + 1)], None, None, T0 + 1)
    again = Book(max_tombstones=100)
    again.restore(journal_of(book), T0 + 2)
    assert again.unfinished == {"app": 1}


def test_a_batch_goes_when_full_or_once_its_first_call_waited_wait_ms() -> None:
    from rayfn.runtime.commands import PumpAt

    batched = policy(batch=4, batch_wait=0.5)
    book = book_with(b"0", b"1", b"2")
    out = book.dispatch(batched, T0)
    assert launches(out) == []  # three of four: wait for more
    assert of(out, PumpAt) == [PumpAt(KEY, T0 + 0.5, batched)]
    for index in (3, 4):
        book.accept(f"fc-{index}", KEY, b"x", 60.0, T0 + 0.1)
    (full,) = launches(book.dispatch(batched, T0 + 0.1))  # four: goes at once
    assert [c[0] for c in full.calls] == ["fc-0", "fc-1", "fc-2", "fc-3"]
    out = book.dispatch(batched, T0 + 0.2)
    assert launches(out) == [] and of(out, PumpAt)[0].at == T0 + 0.6  # fc-4's own wait
    (late,) = launches(book.dispatch(batched, T0 + 0.6))
    assert [c[0] for c in late.calls] == ["fc-4"]


def test_a_batch_killed_by_its_timeout_fails_every_call_in_it() -> None:
    batched = policy(batch=2, batch_wait=0.0, timeout=5.0)
    book = book_with(b"0", b"1")
    (launch,) = launches(book.dispatch(batched, T0))
    book.started("fc-0", 1, T0, batched)  # the batch reports its first call only
    book.timer_fired("fc-0", 0.0)
    book.launch_ended(launch, None, CRASH, None, T0 + 6)
    # The one timed out, the other died with its task; none went back to wait, which
    # would make a batch that hangs run again and again.
    statuses = [book.calls[f"fc-{i}"].status for i in (0, 1)]
    assert statuses == [CallStatus.TIMED_OUT, CallStatus.FAILED]
    assert book.queues.get(KEY) is None


def test_a_dead_letter_is_requeued_with_fresh_retries_and_its_history_kept() -> None:
    from rayfn.runtime.calls import Call

    retried = policy(retries=RetryPolicy(max_retries=1, initial_delay=0.0))
    book = book_with(b"args")
    (launch,) = launches(book.dispatch(retried, T0))
    book.launch_ended(launch, [raised(T0 + 1)], None, None, T0 + 1)
    book.timer_fired("fc-0", 0.0)  # its backoff is over: queued again
    (launch,) = launches(book.dispatch(retried, T0 + 2))
    book.launch_ended(launch, [raised(T0 + 3)], None, None, T0 + 3)
    call = book.calls["fc-0"]
    assert (call.status, call.args) == (CallStatus.FAILED, b"args")  # kept: a dead letter
    assert [c.call_id for c in book.listing(CallQuery(limit=10, dead=True))] == ["fc-0"]
    assert book.requeue("fc-1", T0 + 4) == ([], "unknown")
    commands, refusal = book.requeue("fc-0", T0 + 4)
    assert refusal is None and of(commands, Pump)
    record = book.take_changes()[0][-1]
    restored = Call.from_record(record, None)  # a restart now loses nothing
    assert (restored.status, restored.args, restored.retry_base) == (CallStatus.QUEUED, b"args", 2)
    (launch,) = launches(book.dispatch(retried, T0 + 5))
    assert launch.calls[0][1] == 3  # attempt 3, after the two of its first life
    book.launch_ended(launch, [raised(T0 + 6)], None, None, T0 + 6)
    assert call.status is CallStatus.RETRYING  # its retry counts afresh
    assert book.expire_due(T0 + 10_000) == 1 and "fc-0" in book.calls  # the old deadline
    _, refusal = book.requeue("fc-0", T0 + 7)
    assert refusal == "it is RETRYING: only FAILED or TIMED_OUT calls are requeued"


def test_an_idempotency_key_names_one_call_and_refuses_other_arguments() -> None:
    from rayfn.runtime.calls import Call
    from rayfn.runtime.protocol import Conflict

    book = Book(max_tombstones=10)
    assert book.keyed(KEY, "order-1", b"args") is None
    book.accept("fc-1", KEY, b"args", 60.0, T0, options=CallOptions("order-1"))
    assert book.keyed(KEY, "order-1", b"args") == "fc-1"
    assert book.keyed(KEY, "order-1", b"other") == Conflict("order-1", "fc-1")
    assert book.keyed(("app", "g"), "order-1", b"args") is None  # per function
    restored = Book(max_tombstones=10)
    restored.restore([Call.from_record(book.calls["fc-1"].record(), None).record()], T0)
    assert restored.keyed(KEY, "order-1", b"args") == "fc-1"  # a restart keeps it
    book.cancel("fc-1", T0)  # ended...
    book.expire_due(T0 + 120)  # ...and expired: its key still names it
    assert "fc-1" not in book.calls and book.keyed(KEY, "order-1", b"args") == "fc-1"


# -- per-call options: priority, delay/at, expires_in ------------------------------------


def test_priorities_order_a_backlog_fifo_among_equals_and_a_retry_keeps_its_place() -> None:
    book = Book(max_tombstones=10)
    p = policy(max_containers=1, retries=RetryPolicy(max_retries=1, initial_delay=1.0))
    for index, priority in enumerate([0, 5, 0, 5, -1, 9]):
        book.accept(f"fc-{index}", KEY, b"a", 60.0, T0, options=CallOptions(priority=priority))
    order = []
    now = T0
    while book.queues.get(KEY):
        (launch,) = launches(book.dispatch(p, now))
        order.append(launch.calls[0].call_id)
        book.launch_ended(launch, [ok(now)], None, None, now)
    assert order == ["fc-5", "fc-1", "fc-3", "fc-0", "fc-2", "fc-4"]
    # A retry goes back ahead of its equals, not ahead of higher priorities.
    book.accept("fc-6", KEY, b"a", 60.0, now, options=CallOptions(priority=1))
    book.accept("fc-7", KEY, b"a", 60.0, now, options=CallOptions(priority=1))
    (launch,) = launches(book.dispatch(p, now))
    assert launch.calls[0].call_id == "fc-6"
    book.launch_ended(launch, [raised(now)], None, None, now)
    book.accept("fc-8", KEY, b"a", 60.0, now, options=CallOptions(priority=2))
    book.timer_fired("fc-6", now + 1)
    assert [c.call_id for c in book.queues[KEY]] == ["fc-8", "fc-6", "fc-7"]


def test_a_delayed_call_is_scheduled_until_its_time_and_cancel_works() -> None:
    book = Book(max_tombstones=10)
    commands = book.accept("fc-0", KEY, b"a", 60.0, T0, options=CallOptions(delay=30.0))
    assert commands == [SetTimer("fc-0", T0 + 30)]
    call = book.calls["fc-0"]
    assert call.status is CallStatus.SCHEDULED and not book.queues.get(KEY)
    assert call.info().scheduled_for == T0 + 30
    # Its time comes: queued, and its function pumped.
    fired = book.timer_fired("fc-0", T0 + 30)
    assert call.status is CallStatus.QUEUED and of(fired, Pump)
    # `at` in the past runs now; a cancelled scheduled call never queues.
    assert book.accept("fc-1", KEY, b"a", 60.0, T0, options=CallOptions(at=T0 - 5)) == []
    assert book.calls["fc-1"].status is CallStatus.QUEUED
    book.accept("fc-2", KEY, b"a", 60.0, T0, options=CallOptions(at=T0 + 60))
    assert SetTimer("fc-2", None) in book.cancel("fc-2", T0 + 1)
    assert book.timer_fired("fc-2", T0 + 60) == []
    assert book.calls["fc-2"].status is CallStatus.CANCELLED


def test_a_call_not_started_by_its_deadline_never_runs() -> None:
    book = Book(max_tombstones=10)
    p = policy(max_containers=1)
    expiring = CallOptions(expires_in=10.0)
    book.accept("fc-0", KEY, b"a", 60.0, T0)
    assert book.accept("fc-1", KEY, b"b", 60.0, T0, options=expiring) == [SetTimer("fc-1", T0 + 10)]
    (launch,) = launches(book.dispatch(p, T0))  # fc-0 takes the one place
    assert launch.calls[0].call_id == "fc-0"
    # Still queued at its deadline: it ends there, and is skipped in the queue.
    fired = book.timer_fired("fc-1", T0 + 10)
    assert of(fired, Finished) == [Finished("fc-1")]
    assert book.calls["fc-1"].status is CallStatus.EXPIRED_UNSTARTED
    assert book.calls["fc-1"].failure.kind is FailureKind.EXPIRED_UNSTARTED
    book.launch_ended(launch, [ok(T0 + 11)], None, None, T0 + 11)
    assert not launches(book.dispatch(p, T0 + 11))
    # Launched in time, the worker is told its deadline; a late timer does nothing.
    book.accept("fc-2", KEY, b"c", 60.0, T0 + 11, options=expiring)
    (launch,) = launches(book.dispatch(p, T0 + 11))
    assert launch.calls[0].start_by == T0 + 21
    assert book.timer_fired("fc-2", T0 + 21) == []
    # The worker found it too late: it ends EXPIRED_UNSTARTED, with no start recorded.
    failure = RemoteFailure.of_kind(FailureKind.EXPIRED_UNSTARTED, "late")
    late = AttemptMeta(False, T0 + 22, T0 + 22, failure=failure)
    book.launch_ended(launch, [late], None, None, T0 + 22)
    info = book.calls["fc-2"].info()
    assert info.status is CallStatus.EXPIRED_UNSTARTED and info.started_at is None
    # A dispatch past the deadline (its timer not yet run) ends it too.
    book.accept("fc-3", KEY, b"d", 60.0, T0 + 30, options=expiring)
    assert not launches(book.dispatch(p, T0 + 45))
    assert book.calls["fc-3"].status is CallStatus.EXPIRED_UNSTARTED


def test_scheduled_and_expiring_calls_survive_a_restart() -> None:
    book = Book(max_tombstones=10)
    book.accept("fc-0", KEY, b"a", 60.0, T0, options=CallOptions(delay=30.0, priority=3))
    book.accept("fc-1", KEY, b"b", 60.0, T0, options=CallOptions(expires_in=20.0))
    records, _ = book.take_changes()
    again = Book(max_tombstones=10)
    commands = again.restore(records, T0 + 5)
    assert SetTimer("fc-0", T0 + 30) in commands and SetTimer("fc-1", T0 + 20) in commands
    assert again.calls["fc-0"].status is CallStatus.SCHEDULED
    assert again.calls["fc-0"].priority == 3
    assert [c.call_id for c in again.queues[KEY]] == ["fc-1"]
    again.timer_fired("fc-1", T0 + 20)
    assert again.calls["fc-1"].status is CallStatus.EXPIRED_UNSTARTED
    again.timer_fired("fc-0", T0 + 30)
    assert again.calls["fc-0"].status is CallStatus.QUEUED


def test_listings_filter_by_creation_time_and_id_prefix() -> None:
    book = Book(max_tombstones=10)
    for index in range(5):
        book.accept(f"fc-{index}", KEY, b"a", 60.0, T0 + index)
    listed = book.listing(CallQuery(limit=10, since=T0 + 1, until=T0 + 4))
    assert [c.call_id for c in listed] == ["fc-3", "fc-2", "fc-1"]
    assert [c.call_id for c in book.listing(CallQuery(limit=10, prefix="fc-4"))] == ["fc-4"]
