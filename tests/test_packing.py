"""Packing on a real cluster: short calls share Ray tasks, yet each call still runs once,
keeps its own result, timeout, cancel and retries, and a crash costs only the call
that crashed."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

import rayfn
from rayfn import _connection
from rayfn.exception import CancelledError, ExecutionError, FunctionTimeoutError
from tests.apps import packing
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module", autouse=True)
def deployed(cluster: Cluster) -> None:
    packing.app.deploy()


def _packs() -> int:
    return int(_connection.registry().stats().result()["packs"])


def _runs(folder: Path) -> Counter[int]:
    """How many times each call ran."""
    path = folder / "runs"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(int(line.split()[0]) for line in lines)


def _warm(function: rayfn.Function, folder: Path) -> None:
    """Calls first (ids -10..-1): the registry packs only calls it has seen to be
    short, and a few make its measure forget a slow one (a worker's first call, on a
    busy machine)."""
    list(function.map([str(folder)] * 10, range(-10, 0)))


def _spawn_with_a_hang(folder: Path, hang: int, n: int = 60) -> list[rayfn.FunctionCall]:
    """``n`` short calls of which call ``hang`` runs past its timeout (or until
    cancelled), spawned at once so they are packed."""
    return packing.tally_or_hang.spawn_map([str(folder)] * n, range(n), [hang] * n)


def test_short_calls_share_tasks_and_each_runs_once(tmp_path: Path) -> None:
    _warm(packing.tally, tmp_path)
    before = _packs()
    n = 400
    assert list(packing.tally.map([str(tmp_path)] * n, range(n))) == list(range(n))
    assert _packs() - before >= 5  # hundreds of calls, in a few dozen tasks
    runs = _runs(tmp_path)
    assert all(runs[i] == 1 for i in range(n)), runs


def test_spawned_one_by_one_they_are_packed_too(tmp_path: Path) -> None:
    _warm(packing.tally, tmp_path)
    before = _packs()
    calls = [packing.tally.spawn(str(tmp_path), i) for i in range(300)]
    assert [rayfn.FunctionCall.from_id(c.object_id).get(timeout=60) for c in calls] == list(
        range(300)
    )
    assert _packs() > before
    assert set(_runs(tmp_path).values()) == {1}


def test_a_large_result_ends_its_pack_and_comes_back_whole(tmp_path: Path) -> None:
    _warm(packing.tally, tmp_path)
    n = 120
    bigs = [i % 10 == 3 for i in range(n)]
    results = list(packing.tally.map([str(tmp_path)] * n, range(n), bigs))
    assert results == [bytes(packing.BIG) if big else i for i, big in enumerate(bigs)]
    runs = _runs(tmp_path)
    assert all(runs[i] == 1 for i in range(n)), runs


def test_a_packed_call_past_its_timeout_fails_alone(tmp_path: Path) -> None:
    _warm(packing.tally_or_hang, tmp_path)
    before = _packs()
    n = 60
    calls = _spawn_with_a_hang(tmp_path, 20, n)
    with pytest.raises(FunctionTimeoutError):
        calls[20].get(timeout=60)
    others = [c.get(timeout=60) for i, c in enumerate(calls) if i != 20]
    assert others == [i for i in range(n) if i != 20]
    assert _packs() > before
    # Those before it in its pack were handed back when it reported RUNNING; those
    # after it had not started, and ran once, later.
    assert set(_runs(tmp_path).values()) == {1}


def test_cancelling_a_running_packed_call_stops_only_that_call(tmp_path: Path) -> None:
    _warm(packing.tally_or_hang, tmp_path)
    before = _packs()
    n = 60
    calls = _spawn_with_a_hang(tmp_path, 30, n)
    deadline = time.monotonic() + 30
    while calls[30].status().status is not rayfn.CallStatus.RUNNING:
        assert time.monotonic() < deadline, "the hanging call never reported RUNNING"
        time.sleep(0.05)
    calls[30].cancel()
    with pytest.raises(CancelledError):
        calls[30].get(timeout=30)
    others = [c.get(timeout=60) for i, c in enumerate(calls) if i != 30]
    assert others == [i for i in range(n) if i != 30]
    assert _packs() > before
    assert set(_runs(tmp_path).values()) == {1}


def test_retries_of_packed_calls_follow_the_policy(tmp_path: Path) -> None:
    _warm(packing.flaky, tmp_path)
    before = _packs()
    n = 80
    assert list(packing.flaky.map([str(tmp_path)] * n, range(n))) == list(range(n))
    assert _packs() > before
    runs = _runs(tmp_path)
    assert all(runs[i] == (2 if i % 2 else 1) for i in range(n)), runs


def test_a_crash_in_a_pack_fails_only_the_call_that_crashed(tmp_path: Path) -> None:
    """Calls of the dead pack that had not been handed back run again, one per task
    from then on, so the crashing call crashes alone and is the only one to fail."""
    _warm(packing.tally_or_crash, tmp_path)
    before = _packs()
    n = 60
    calls = packing.tally_or_crash.spawn_map([str(tmp_path)] * n, range(n), [20] * n)
    with pytest.raises(ExecutionError, match="could not run to its end"):
        calls[20].get(timeout=60)
    others = [c.get(timeout=60) for i, c in enumerate(calls) if i != 20]
    assert others == [i for i in range(n) if i != 20]
    assert _packs() > before
    assert all(_runs(tmp_path)[i] >= 1 for i in range(n))


def _version(sleep_s: float) -> tuple[rayfn.App, rayfn.Function]:
    app = rayfn.App("test-packing-redeploy")

    @app.function(name="job")
    def job(i: int) -> int:
        time.sleep(sleep_s)
        return i

    return app, job


def test_a_redeployed_function_is_measured_afresh(tmp_path: Path) -> None:
    """The first version was short and packed; the second is slow, and its calls are
    not packed on the strength of the first version's measurements."""
    fast_app, fast = _version(0.0)
    fast_app.deploy()
    fast.remote(-1)
    before = _packs()
    assert list(fast.map(range(100))) == list(range(100))
    assert _packs() > before
    slow_app, slow = _version(0.2)
    slow_app.deploy()
    before = _packs()
    assert list(slow.map(range(16))) == list(range(16))
    assert _packs() == before
