"""Job-queue semantics on a real Ray cluster: retries with backoff, crashes, timeouts,
concurrency limits, cancellation, map and friends, status and listing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import rayfn
from rayfn.exception import CancelledError, ExecutionError, FunctionTimeoutError
from tests.apps import semantics as jobs
from tests.conftest import Cluster, pid_gone

pytestmark = pytest.mark.timeout(180)
S = rayfn.CallStatus


@pytest.fixture(scope="module", autouse=True)
def deployed(cluster: Cluster) -> None:
    jobs.app.deploy()


def wait_for(predicate, seconds: float = 30, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_backoff_spaces_attempts_and_the_third_succeeds(tmp_path: Path) -> None:
    call = jobs.fails_twice.spawn(str(tmp_path))
    assert call.get(timeout=60) == "third time lucky"
    starts = [float(t) for t in (tmp_path / "attempts").read_text().split()]
    assert len(starts) == 3
    assert starts[1] - starts[0] >= 0.2
    assert starts[2] - starts[1] >= 0.4
    info = call.status()
    assert info.status is S.SUCCEEDED
    assert [a.outcome for a in info.attempts] == ["raised", "raised", "succeeded"]
    assert info.attempts[0].error == "ConnectionError: transient"


def test_retry_on_leaves_other_exceptions_unretried(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(KeyError):
        jobs.only_connection_errors_retried.remote(str(other), "KeyError")
    assert len((other / "attempts").read_text().splitlines()) == 1

    listed = tmp_path / "listed"
    listed.mkdir()
    with pytest.raises(ConnectionError):
        jobs.only_connection_errors_retried.remote(str(listed), "ConnectionError")
    assert len((listed / "attempts").read_text().splitlines()) == 4  # 1 + 3 retries


def test_retry_on_a_base_class_retries_its_subclasses_as_except_does(tmp_path: Path) -> None:
    app = rayfn.App("test-semantics-retry-on")

    @app.function(retries=rayfn.Retries(2, initial_delay=0.0, retry_on=[OSError]))
    def connects_the_second_time(folder: str) -> str:
        attempts = Path(folder) / "attempts"
        with attempts.open("a") as marks:
            marks.write("attempt\n")
        if len(attempts.read_text().splitlines()) == 1:
            raise ConnectionError("refused")  # a subclass of OSError
        return "connected"

    app.deploy()
    call = connects_the_second_time.spawn(str(tmp_path))
    assert call.get(timeout=60) == "connected"
    info = call.status()
    assert [a.outcome for a in info.attempts] == ["raised", "succeeded"]
    assert info.attempts[0].error == "ConnectionError: refused"


def test_a_crashed_worker_is_retried(tmp_path: Path) -> None:
    assert jobs.crashes_first.remote(str(tmp_path)) == "survived"
    call = jobs.crashes_always.spawn()
    with pytest.raises(ExecutionError, match="could not run to its end") as raised:
        call.get(timeout=60)
    assert "Worker" in str(raised.value) or "died" in str(raised.value).lower()
    assert call.status().status is S.FAILED
    assert call.status().attempts[0].outcome == "crashed"


def test_timeout_stops_the_attempt_and_its_worker(tmp_path: Path) -> None:
    call = jobs.overruns.spawn(str(tmp_path))
    started = time.monotonic()
    with pytest.raises(FunctionTimeoutError, match="ran past its timeout of 1 s"):
        call.get(timeout=60)
    assert time.monotonic() - started < 10
    assert call.status().status is S.TIMED_OUT
    assert not issubclass(FunctionTimeoutError, TimeoutError)  # a polling loop ends
    pid = int((tmp_path / "pid").read_text())
    wait_for(lambda: pid_gone(pid), what=f"worker {pid} to exit")


def test_max_containers_caps_concurrency_in_submit_order(tmp_path: Path) -> None:
    calls = [jobs.limited.spawn(str(tmp_path), i) for i in range(6)]
    assert [c.get(timeout=90) for c in calls] == list(range(6))
    spans = [
        tuple(map(float, line.split())) for line in (tmp_path / "spans").read_text().splitlines()
    ]
    assert len(spans) == 6
    events = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 2
    # Handed to Ray in submit order; the first two then run at once, so which of them
    # starts first is a race between two workers, not an ordering rayfn promises.
    order = [int(i) for _, _, i in sorted(spans)]
    assert set(order[:2]) == {0, 1}
    submitted = [c.status().attempts[0].submitted_at for c in calls]
    assert submitted == sorted(submitted)


def test_cancel_queued_running_and_finished(tmp_path: Path) -> None:
    blocker = jobs.one_at_a_time.spawn(str(tmp_path), "blocker", 30)
    queued = jobs.one_at_a_time.spawn(str(tmp_path), "queued", 0)
    wait_for(lambda: blocker.status().status is S.RUNNING, what="the blocker to run")
    assert queued.status().status is S.QUEUED

    assert queued.cancel().status is S.CANCELLED
    with pytest.raises(CancelledError):
        queued.get(timeout=5)

    pid = int(
        wait_for(lambda: (tmp_path / "blocker").exists() and (tmp_path / "blocker").read_text())
    )
    assert blocker.cancel().status is S.CANCELLED
    with pytest.raises(CancelledError):
        blocker.get(timeout=5)
    wait_for(lambda: pid_gone(pid), what="the cancelled call's worker to exit")

    after = jobs.one_at_a_time.spawn(str(tmp_path), "after", 0)
    assert after.get(timeout=60) == "after"  # the slot was freed
    assert not (tmp_path / "queued").exists()  # the cancelled queued call never ran

    assert after.cancel().status is S.SUCCEEDED  # a finished call ignores cancel
    assert after.get(timeout=0) == "after"


def test_map_starmap_spawn_map_gather() -> None:
    assert list(jobs.square.map(range(10))) == [x * x for x in range(10)]
    assert sorted(jobs.square.map(range(10), order_outputs=False)) == sorted(
        x * x for x in range(10)
    )
    assert list(jobs.add.map([1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    assert list(jobs.add.starmap([(1, 1), (2, 2)])) == [2, 4]
    assert list(jobs.add.map([1, 2], kwargs={"b": 100})) == [101, 102]

    calls = jobs.square.spawn_map(range(5))
    assert all(isinstance(c, rayfn.FunctionCall) for c in calls)
    assert [rayfn.FunctionCall.from_id(c.object_id).get(timeout=60) for c in calls] == [
        0,
        1,
        4,
        9,
        16,
    ]
    assert rayfn.FunctionCall.gather(*calls) == [0, 1, 4, 9, 16]
    assert jobs.square.for_each(range(3)) is None


def test_map_failures_raise_or_come_back_as_values() -> None:
    with pytest.raises(ZeroDivisionError):
        list(jobs.reciprocal.map([1, 0, 2]))
    results = list(jobs.reciprocal.map([1, 0, 2], return_exceptions=True))
    assert results[0] == 1.0 and results[2] == 0.5
    assert isinstance(results[1], ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        rayfn.FunctionCall.gather(*jobs.reciprocal.spawn_map([0]))


def test_unordered_map_yields_in_finishing_order() -> None:
    # The slow one far slower: "fast" may wait for a worker to start on a busy machine.
    results = list(jobs.sleep_then.map([4.0, 0.1], ["slow", "fast"], order_outputs=False))
    assert results == ["fast", "slow"]


def test_status_and_listing_newest_first() -> None:
    first = jobs.square.spawn(2)
    second = jobs.square.spawn(3)
    first.get(timeout=60), second.get(timeout=60)
    info = second.status()
    assert (info.app, info.function, info.status) == ("test-semantics", "square", S.SUCCEEDED)
    assert info.created_at <= info.started_at <= info.finished_at  # type: ignore[operator]
    listed = rayfn.list_calls(app="test-semantics", function="square", limit=2)
    assert [c.call_id for c in listed] == [second.object_id, first.object_id]
    page2 = rayfn.list_calls(
        app="test-semantics", function="square", limit=1, before=first.object_id
    )
    assert page2 and page2[0].call_id not in (first.object_id, second.object_id)
    failed = rayfn.list_calls(app="test-semantics", status=S.FAILED)
    assert all(c.status is S.FAILED for c in failed)


def test_call_list_cli(cluster: Cluster) -> None:
    jobs.square.remote(4)
    listed = cluster.cli(
        "call", "list", "--app", "test-semantics", "--function", "square", "--json", "--limit", "1"
    )
    assert listed.returncode == 0, listed.stderr
    import json

    (record,) = json.loads(listed.stdout)
    assert record["status"] == "SUCCEEDED" and record["function"] == "square"


def _versioned(tag: str, gate: Path) -> tuple[rayfn.App, rayfn.Function]:
    app = rayfn.App("test-redeploy-rule")

    @app.function(name="job", max_containers=1)
    def job(i: int) -> str:
        while i == 0 and not gate.exists():  # the first call holds the only slot
            time.sleep(0.02)
        return tag

    return app, job


def test_queued_calls_run_the_version_deployed_when_they_start(tmp_path: Path) -> None:
    """The redeploy rule: a running call finishes on its version; calls still queued
    when the new version is deployed run the new one, whether or not anything is
    spawned after the deploy."""
    gate = tmp_path / "go"
    old_app, old_job = _versioned("v1", gate)
    old_app.deploy()
    calls = [old_job.spawn(i) for i in range(4)]
    wait_for(lambda: calls[0].status().status is S.RUNNING, what="the first call to run")
    assert [c.status().status for c in calls[1:]] == [S.QUEUED] * 3
    new_app, new_job = _versioned("v2", gate)
    new_app.deploy()
    gate.touch()
    assert [c.get(timeout=60) for c in calls] == ["v1", "v2", "v2", "v2"]
    assert new_job.remote(5) == "v2"
