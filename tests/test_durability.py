"""Nothing accepted is lost when the registry restarts: it journals every call before
answering (runtime/journal.py), and Ray's restart of it replays the journal. On a real
cluster; the registry is killed with ``ray.kill(..., no_restart=False)``, as a crash
of its process would leave it."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray

import rayfn
from rayfn import _connection
from rayfn._function_call import fetch_results
from rayfn.exception import CallLostError, ExpiredUnstartedError, OutputExpiredError
from rayfn.runtime.constants import NAMESPACE, REGISTRY_ACTOR_NAME
from rayfn.runtime.ids import parse_call_id
from rayfn.runtime.protocol import Submission
from tests.apps import durable
from tests.conftest import Cluster

# A cluster of its own: it kills the registry.
pytestmark = [pytest.mark.timeout(300), pytest.mark.own_cluster()]


@pytest.fixture(scope="module", autouse=True)
def deployed(cluster: Cluster) -> None:
    durable.app.deploy()


def _kill_registry(wait: bool = True) -> None:
    ray.kill(ray.get_actor(REGISTRY_ACTOR_NAME, namespace=NAMESPACE), no_restart=False)
    if wait:
        _stats()


def _stats() -> dict[str, int]:
    """The registry's figures, once it answers again."""
    stats: dict[str, int] = _connection.registry().stats().result()
    return stats


def _wait_for_runs(folder: Path, pattern: str, count: int = 1) -> None:
    deadline = time.monotonic() + 60
    while len(list(folder.glob(pattern))) < count:
        assert time.monotonic() < deadline, "the calls never started"
        time.sleep(0.02)


def _runs(folder: Path, name: str) -> int:
    path = folder / name
    return path.stat().st_size if path.exists() else 0


def test_registry_killed_with_455_calls_loses_none_and_gets_nothing_wrong(
    tmp_path: Path,
) -> None:
    squares = [durable.square.spawn(i) for i in range(50)]
    bigs = [durable.big.spawn(i) for i in range(5)]
    rayfn.FunctionCall.gather(*squares, *bigs)
    finished_before = {c.object_id: c.status() for c in squares}
    slows = [durable.slow.spawn(i, str(tmp_path)) for i in range(400)]
    slow_ids = [c.object_id for c in slows]
    _wait_for_runs(tmp_path, "slow-*", 2)  # some run, most wait their turn

    _kill_registry()
    assert durable.square.spawn(12).get(timeout=60) == 144  # a new spawn works at once

    ids = [c.object_id for c in squares + bigs] + slow_ids
    results = fetch_results(ids, return_exceptions=True)
    expected = (
        [i * i for i in range(50)]
        + [bytes([i]) * (200 * 1024) for i in range(5)]
        + [2 * i for i in range(400)]
    )
    wrong = [(i, r) for i, r, e in zip(ids, results, expected, strict=True) if r != e]
    assert wrong == [], wrong[:3]
    # Finished calls answer as before: same status, same finish (so the same expiry).
    for call in squares:
        status = rayfn.FunctionCall.from_id(call.object_id).status()
        before = finished_before[call.object_id]
        assert (status.status, status.finished_at) == (before.status, before.finished_at)
    # Every queued or running call ran. Ran again: the running ones (2 at most), and
    # those whose end was not journaled yet (a write in flight: 2 at most).
    runs = [_runs(tmp_path, f"slow-{i}") for i in range(400)]
    assert min(runs) >= 1 and sum(runs) - 400 <= 4, runs
    rerun = [rayfn.FunctionCall.from_id(i).status() for i in slow_ids]
    for info in rerun:
        assert info.status is rayfn.CallStatus.SUCCEEDED
        assert [a.outcome for a in info.attempts][-1] == "succeeded"
        assert all(a.outcome == "interrupted" for a in info.attempts[:-1])


def test_a_get_parked_in_the_registry_is_answered_after_its_restart(tmp_path: Path) -> None:
    call = durable.slow.spawn(7, str(tmp_path), 2.0)
    _wait_for_runs(tmp_path, "slow-7")
    answers: list[object] = []
    waiter = threading.Thread(target=lambda: answers.append(call.get(timeout=120)), daemon=True)
    waiter.start()
    time.sleep(0.5)  # the get now waits inside the registry
    _kill_registry(wait=False)
    waiter.join(timeout=90)
    assert answers == [14]
    assert _runs(tmp_path, "slow-7") == 2  # the attempt the restart cut short ran again
    attempts = call.status().attempts
    assert [a.number for a in attempts] == [1, 2]
    assert attempts[0].outcome == "interrupted"


def test_registry_killed_twice_in_a_row_loses_nothing(tmp_path: Path) -> None:
    calls = [durable.slow.spawn(i, str(tmp_path), 0.05) for i in range(100)]
    ids = [c.object_id for c in calls]
    _wait_for_runs(tmp_path, "slow-*")
    _kill_registry()
    _kill_registry()
    assert fetch_results(ids, return_exceptions=True) == [2 * i for i in range(100)]
    # The ids carry the epoch that issued them; restarts never make them "lost".
    origin = parse_call_id(ids[0])
    assert origin is not None and parse_call_id(durable.square.spawn(1).object_id) is not None


def test_registry_killed_while_an_expiry_burst_runs(tmp_path: Path) -> None:
    briefs = [durable.brief.spawn(i) for i in range(1500)]
    assert rayfn.FunctionCall.gather(*briefs) == list(range(1500))
    waiting = [durable.slow.spawn(i, str(tmp_path), 0.05) for i in range(50)]
    finished = max(rayfn.FunctionCall.from_id(briefs[-1].object_id).status().finished_at or 0, 0)
    time.sleep(max(0.0, finished + 3.0 - time.time()))  # their results age out now
    _kill_registry()
    lost = []
    for call in briefs:
        try:
            rayfn.FunctionCall.from_id(call.object_id).get(timeout=0)
        except OutputExpiredError:
            continue
        except CallLostError:
            lost.append(call.object_id)
        else:
            pytest.fail("a result outlived its result_ttl")
    assert lost == []
    ids = [c.object_id for c in waiting]
    assert fetch_results(ids, return_exceptions=True) == [2 * i for i in range(50)]


@pytest.mark.timeout(500)
def test_registry_killed_at_random_during_5000_calls_from_4_clients(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Sent through spawn_map and spawn; some raise, some are retried. Every id ends
    in one terminal state with the right answer; none is lost, none is accepted
    twice, none hangs."""
    per_client = 1250
    script = (
        "import json, sys, rayfn\n"
        "first, n, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
        "work = rayfn.Function.from_name('test-durable', 'work')\n"
        "flaky = rayfn.Function.from_name('test-durable', 'flaky')\n"
        "pairs = []\n"
        "for start in range(first, first + n, 250):\n"
        "    chunk = range(start, min(start + 250, first + n))\n"
        "    plain = [i for i in chunk if i % 10 != 3]\n"
        "    pairs += zip(plain, [c.object_id for c in work.spawn_map(plain)])\n"
        "    pairs += [(i, flaky.spawn(i, folder).object_id) for i in chunk if i % 10 == 3]\n"
        "print(json.dumps(pairs))\n"
    )
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(k * per_client), str(per_client), str(tmp_path)],
            env=cluster.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    rng = random.Random(14)
    kills = 0
    while any(c.poll() is None for c in clients) or kills < 3:
        time.sleep(rng.uniform(1.0, 2.5))
        _kill_registry()
        kills += 1
    pairs: list[tuple[int, str]] = []
    for client in clients:
        out, err = client.communicate(timeout=300)
        assert client.returncode == 0, err[-2000:]
        pairs += [(i, call_id) for i, call_id in json.loads(out.strip().splitlines()[-1])]
    ids = [call_id for _, call_id in pairs]
    assert len(ids) == len(set(ids)) == 4 * per_client
    assert sorted(i for i, _ in pairs) == list(range(4 * per_client))
    _kill_registry()  # once more, while the last calls run

    results: list[object] = []
    for start in range(0, len(ids), 500):
        results += fetch_results(ids[start : start + 500], return_exceptions=True)
    for (i, _), result in zip(pairs, results, strict=True):
        if i % 100 == 7:
            assert isinstance(result, ValueError) and str(result) == f"job {i} failed"
        else:
            assert result == i, (i, result)
    for i in range(3, 4 * per_client, 10):
        assert _runs(tmp_path, f"flaky-{i}") >= 2  # its first run failed; a retry won
    # Accepted once each: the registry lists exactly these calls of `work`.
    listed = rayfn.list_calls(app="test-durable", function="work", limit=10_000)
    work_ids = {call_id for i, call_id in pairs if i % 10 != 3}
    assert len(listed) == len(work_ids) and {c.call_id for c in listed} == work_ids
    assert all(c.status.is_terminal for c in listed)
    assert sum(c.status is rayfn.CallStatus.FAILED for c in listed) == 4 * per_client // 100


def test_scheduled_and_expiring_calls_keep_their_times_across_a_restart(tmp_path: Path) -> None:
    folder = str(tmp_path)
    accepted_at = time.time()
    delayed = durable.stamp.with_options(delay=4).spawn()
    blockers = [durable.slow.spawn(i, folder, 6.0) for i in (1, 2)]  # both of its places
    _wait_for_runs(tmp_path, "slow-*", 2)
    expiring = durable.slow.with_options(expires_in=1.5).spawn(3, folder)
    assert (delayed.status().status, expiring.status().status) == ("SCHEDULED", "QUEUED")

    _kill_registry()
    assert delayed.status().status == "SCHEDULED"
    assert delayed.status().scheduled_for == pytest.approx(accepted_at + 4, abs=1)
    with pytest.raises(ExpiredUnstartedError):
        expiring.get(timeout=30)
    assert delayed.get(timeout=30) >= accepted_at + 4  # no earlier than its time
    for call in blockers:
        call.cancel()
    assert not (tmp_path / "slow-3").exists()  # the expired call never ran
    assert expiring.status().status == "EXPIRED_UNSTARTED"


def test_a_spawn_sent_again_with_its_token_is_not_a_second_call() -> None:
    """What a client does when its spawn's answer was lost with the registry."""
    registry = _connection.registry()
    blob = ray.cloudpickle.dumps(((5,), {}))
    items = [Submission("test-durable", "square", blob)] * 3
    first = registry.submit(items, "token-1").result().answers
    assert registry.submit(items, "token-1").result().answers == first
    _kill_registry()
    assert _connection.registry().submit(items, "token-1").result().answers == first
    assert len(set(first)) == 3
    assert fetch_results(first, return_exceptions=True) == [25, 25, 25]


def test_a_compacted_journal_restores_the_same_calls(tmp_path: Path) -> None:
    """A snapshot replaces the segments it covers; snapshot + tail restore it all."""
    from rayfn.runtime import kv

    done = [durable.square.spawn(i) for i in range(300)]
    rayfn.FunctionCall.gather(*done)
    waiting = [durable.slow.spawn(i, str(tmp_path), 0.05) for i in range(40)]
    segments_before = len(kv.keys("rayfn:journal:0:seg:"))
    _connection.registry().debug("compact").result()
    assert len(kv.keys("rayfn:journal:0:seg:")) < segments_before
    assert kv.keys("rayfn:journal:0:snap:")
    after = [durable.square.spawn(1000 + i) for i in range(20)]  # the tail
    _kill_registry()
    ids = [c.object_id for c in done + waiting + after]
    expected = [i * i for i in range(300)] + [2 * i for i in range(40)]
    expected += [(1000 + i) ** 2 for i in range(20)]
    assert fetch_results(ids, return_exceptions=True) == expected


def _journaled(call_id: str) -> tuple[object, ...]:
    """The last record of ``call_id`` in the registry's journal, as a restart reads it."""
    from rayfn.runtime.book import Book
    from rayfn.runtime.journal import Journal

    records = [r for r in Journal(0, Book(10)).load() if not isinstance(r, str)]
    return [r for r in records if r[0] == call_id][-1]


def test_a_call_waited_for_takes_one_journal_write_not_one_per_change() -> None:
    """Acceptance, launch and end of a short call go out together, when its answer
    does (each write costs the GCS and the registry CPU)."""
    before = _stats()["journal_segments_written"]
    assert [durable.square.remote(i) for i in range(20)] == [i * i for i in range(20)]
    written = _stats()["journal_segments_written"] - before
    assert 20 <= written <= 24  # one per call (two, when every change was written at once)


def test_a_state_the_registry_tells_is_in_the_journal_already(tmp_path: Path) -> None:
    """Not only ends: a backoff told is written, though nobody waits on retries."""
    call = durable.patient.spawn(str(tmp_path))
    deadline = time.monotonic() + 30
    while (info := call.status()).status is not rayfn.CallStatus.RETRYING:
        assert time.monotonic() < deadline, f"never RETRYING: {info.status}"
    assert _journaled(call.object_id)[6] == rayfn.CallStatus.RETRYING.value
    call.cancel()
    assert _journaled(call.object_id)[6] == rayfn.CallStatus.CANCELLED.value
