"""Calls on a real Ray cluster: ownership across processes, expiry, pending, remote
exceptions, nested calls, redeploys and ephemeral apps."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from concurrent.futures import Future

import pytest

import rayfn
from rayfn import _connection, _output
from rayfn.exception import NotFoundError, OutputExpiredError, RemoteError
from tests.apps import jobs
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module", autouse=True)
def deployed(cluster: Cluster) -> rayfn.App:
    jobs.app.deploy()
    return jobs.app


def test_spawn_then_get_by_id_returns_the_value(cluster: Cluster) -> None:
    echo = rayfn.Function.from_name("test-jobs", "echo")
    call = echo.spawn(1, "two", three=[3])
    assert call.object_id.startswith("fc-")
    again = rayfn.FunctionCall.from_id(call.object_id)
    assert again.get(timeout=60) == {"args": [1, "two"], "kwargs": {"three": [3]}}
    # get() may be called any number of times until expiry.
    assert again.get(timeout=0) == again.get()


def test_a_handle_pinned_to_a_version_calls_only_that_version(cluster: Cluster) -> None:
    current = rayfn.Function.lookup("test-jobs", "echo")
    assert current._info is not None
    version = current._info.version
    pinned = rayfn.Function.from_name("test-jobs", "echo", version=version)
    assert pinned.remote(1) == {"args": [1], "kwargs": {}}
    other = rayfn.Function.from_name("test-jobs", "echo", version=version + 1)
    with pytest.raises(NotFoundError, match=f"version {version + 1} is not deployed"):
        other.remote(1)


def test_result_survives_client_exit(cluster: Cluster) -> None:
    """Process A spawns and is SIGKILLed at once; process B fetches the result by id.
    A result owned by A would die with it (OwnerDiedError): the registry owns it."""
    spawner = cluster.python(
        "import os, rayfn\n"
        "call = rayfn.Function.from_name('test-jobs', 'slow').spawn(2, value='made by A')\n"
        "print(call.object_id, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    assert spawner.returncode == -9, spawner.stderr
    call_id = spawner.stdout.strip().splitlines()[-1]
    fetcher = cluster.python(
        "import json, rayfn\n"
        f"print(json.dumps(rayfn.FunctionCall.from_id({call_id!r}).get(timeout=60)))\n"
    )
    assert fetcher.returncode == 0, fetcher.stderr
    assert json.loads(fetcher.stdout.strip().splitlines()[-1]) == "made by A"


def test_result_expires_after_result_ttl(cluster: Cluster) -> None:
    call = jobs.short_lived.spawn("fresh")  # result_ttl=2
    assert call.get(timeout=60) == "fresh"
    finished = time.monotonic()
    assert call.status().status is rayfn.CallStatus.SUCCEEDED
    deadline = finished + 10
    while time.monotonic() < deadline:
        try:
            call.get(timeout=0)
        except OutputExpiredError as exc:
            assert exc.call_id == call.object_id
            break
        time.sleep(0.2)
    else:
        pytest.fail("the result never expired")
    assert time.monotonic() - finished >= 1.5  # not before its ttl
    # Expired is a terminal answer, not a "still running" one.
    assert not issubclass(OutputExpiredError, TimeoutError)
    with pytest.raises(OutputExpiredError):
        rayfn.FunctionCall.from_id(call.object_id).get(timeout=5)


def test_get_with_zero_timeout_on_a_running_call_raises_timeout_error(cluster: Cluster) -> None:
    call = jobs.slow.spawn(20)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        call.get(timeout=0)
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        call.get(timeout=1)
    assert 0.9 <= time.monotonic() - started < 5
    assert call.status().status is rayfn.CallStatus.RUNNING


def test_remote_exception_keeps_type_message_and_traceback(cluster: Cluster) -> None:
    with pytest.raises(jobs.JobFailed, match="disk on fire") as raised:
        jobs.fail.remote("disk on fire")
    notes = "\n".join(raised.value.__notes__)
    assert "Remote traceback" in notes
    assert "raise JobFailed(message)" in notes  # the remote source line
    assert "tests/apps/jobs.py" in notes

    call = rayfn.Function.from_name("test-jobs", "fail_with_builtin").spawn(7)
    with pytest.raises(KeyError, match="missing-key-7") as raised_again:
        rayfn.FunctionCall.from_id(call.object_id).get(timeout=60)
    assert "fail_with_builtin" in raised_again.value.remote_traceback  # type: ignore[attr-defined]
    info = call.status()
    assert info.status is rayfn.CallStatus.FAILED
    assert info.error == "KeyError: 'missing-key-7'"


def test_exception_of_a_type_this_process_cannot_import_becomes_remote_error(
    cluster: Cluster,
) -> None:
    app = rayfn.App("test-unimportable")

    @app.function()
    def raise_unpicklable() -> None:
        class Local(Exception):
            def __reduce__(self):  # type: ignore[no-untyped-def]
                raise TypeError("cannot pickle me")

        raise Local("local failure")

    with app.run(), pytest.raises(RemoteError, match="local failure") as raised:
        raise_unpicklable.remote()
    assert "Local" in raised.value.type_name
    assert "raise Local" in raised.value.remote_traceback


def test_nested_spawn_from_inside_a_function(cluster: Cluster) -> None:
    result = jobs.spawn_child.remote("inner")
    assert result["child"] == {"args": ["inner"], "kwargs": {}}
    assert rayfn.FunctionCall.from_id(result["child_id"]).get(timeout=10) == result["child"]


def test_current_function_call_id_inside_a_call(cluster: Cluster) -> None:
    call = jobs.whoami.spawn()
    assert call.get(timeout=60)["call_id"] == call.object_id
    assert rayfn.current_function_call_id() is None


def test_redeploy_replaces_the_version(cluster: Cluster) -> None:
    app = rayfn.App("test-versions")

    @app.function(name="answer")
    def first() -> int:
        return 1

    v1 = app.deploy()
    assert rayfn.Function.lookup("test-versions", "answer").remote() == 1

    app2 = rayfn.App("test-versions")

    @app2.function(name="answer")
    def second() -> int:
        return 2

    v2 = app2.deploy()
    assert v2.version == v1.version + 1
    assert rayfn.Function.lookup("test-versions", "answer").remote() == 2


def test_ephemeral_run_does_not_replace_the_deployed_app(cluster: Cluster) -> None:
    app = rayfn.App("test-jobs")  # same name as the deployed app

    @app.function(name="echo")
    def shadow(*args: object) -> str:
        return "ephemeral"

    with app.run():
        assert shadow.remote() == "ephemeral"
        deployed = rayfn.Function.lookup("test-jobs", "echo")
        assert deployed.remote("x") == {"args": ["x"], "kwargs": {}}
    names = [a.name for a in _list_apps()]
    assert "test-jobs" in names
    assert not any(n.startswith("test-jobs@") for n in names)  # stopped on exit
    # Nothing left following Ray's log channel: a subscriber outliving its cluster
    # spins a core inside Ray (it did, through every later test module).
    assert _output.follower._thread is None


def test_local_runs_in_this_process(cluster: Cluster) -> None:
    assert jobs.echo.local(1) == {"args": [1], "kwargs": {}}


def _list_apps() -> list[rayfn.runtime.records.AppInfo]:

    from rayfn import _connection

    return _connection.control().list_apps().result()


def test_image_requirements_become_a_runtime_env_only_when_missing(cluster: Cluster) -> None:
    have = rayfn.App(
        "test-image-have", image=rayfn.Image.debian_slim().pip_install("fastapi[standard]")
    )
    lack = rayfn.App(
        "test-image-lack", image=rayfn.Image.debian_slim().pip_install("surely-absent-pkg")
    )
    for app in (have, lack):
        app.function(name="noop")(lambda: None)
    assert have.deploy().runtime_env is None
    assert lack.deploy().runtime_env == {"pip": ["surely-absent-pkg"]}
    # The decision was the cluster's: it is what the registry gives the call's task.
    assert rayfn.Function.lookup("test-image-have", "noop").remote() is None


def test_unpicklable_result_fails_the_call_with_a_clear_error(cluster: Cluster) -> None:
    from rayfn.exception import SerializationError

    call = jobs.unpicklable_result.spawn()
    with pytest.raises(
        SerializationError, match=r"test-jobs\.unpicklable_result cannot be pickled"
    ):
        call.get(timeout=60)
    info = call.status()
    assert info.status is rayfn.CallStatus.FAILED
    assert [a.outcome for a in info.attempts] == ["bad_result"]  # not a dead worker


@pytest.mark.parametrize("size", [10, 64 * 1024 + 1, 3 * 1024 * 1024])
def test_small_results_inline_and_large_ones_through_the_object_store(
    cluster: Cluster, size: int
) -> None:
    assert jobs.sized_result.remote(size) == b"x" * size


def test_result_over_the_size_limit_fails_the_call_clearly(cluster: Cluster) -> None:
    from rayfn.exception import SerializationError
    from tests.conftest import TEST_MAX_RESULT_BYTES

    with pytest.raises(
        SerializationError, match=rf"over RAYFN_MAX_RESULT_BYTES \({TEST_MAX_RESULT_BYTES}\)"
    ):
        jobs.sized_result.remote(TEST_MAX_RESULT_BYTES + 1)


def test_spawns_in_a_loop_share_round_trips_and_keep_their_order(cluster: Cluster) -> None:
    registry = _connection.registry()
    before = registry.stats().result()["spawn_batches"]
    calls = [jobs.echo.spawn(i) for i in range(300)]
    ids = [c.object_id for c in calls]  # each id exists only once the registry has it
    batches = registry.stats().result()["spawn_batches"] - before
    assert batches < 150, f"{batches} round trips for 300 spawns: not coalesced"
    # The registry took them in spawn order: its listing (newest first) is reversed.
    listed = rayfn.list_calls(app="test-jobs", function="echo", limit=300)
    assert [c.call_id for c in reversed(listed)] == ids
    assert [c.get(timeout=60)["args"] for c in calls[::50]] == [[i] for i in range(0, 300, 50)]


def _spawned_after_its_app_stopped(app_name: str) -> rayfn.FunctionCall:
    """A call spawned through a handle whose first call was accepted, after the app
    was stopped: spawn() returns before the registry refuses it."""
    app = rayfn.App(app_name)

    @app.function()
    def one() -> int:
        return 1

    app.deploy()
    assert one.remote() == 1
    assert _connection.control().stop(app_name).result() is not None
    return one.spawn()


def test_a_call_refused_after_spawn_returned_raises_when_its_id_is_read(
    cluster: Cluster,
) -> None:
    """Once a handle's first call was accepted, spawn() returns before the registry
    answers; a refusal (the app was stopped meanwhile) surfaces where the id is used."""
    refused = _spawned_after_its_app_stopped("test-refused-later")
    with pytest.raises(NotFoundError, match="not deployed"):
        refused.object_id  # noqa: B018  # reading it is the test
    with pytest.raises(NotFoundError, match="not deployed"):
        refused.get(timeout=0)


def test_get_right_after_spawn_sends_both_in_one_round_trip(cluster: Cluster) -> None:
    """A get on a call the spawner has not sent yet takes it back and sends it with
    the get (spawn_and_get): no separate spawn round trip. The sender thread may win
    the race for a call now and then; it never wins them all."""
    jobs.echo.spawn(-1).get(timeout=60)  # a handle's first spawn waits for the registry
    registry = _connection.registry()
    before = registry.stats().result()["spawn_batches"]
    for i in range(20):
        call = jobs.echo.spawn(i)
        assert call.get(timeout=60) == {"args": [i], "kwargs": {}}
        assert rayfn.FunctionCall.from_id(call.object_id).get(timeout=0)["args"] == [i]
    batches = registry.stats().result()["spawn_batches"] - before
    assert batches <= 10, f"{batches} spawn round trips for 20 spawn-then-get"


def test_a_call_refused_when_sent_with_its_get_raises_there_and_on_its_id(
    cluster: Cluster,
) -> None:
    refused = _spawned_after_its_app_stopped("test-refused-with-get")
    with pytest.raises(NotFoundError, match="not deployed"):
        refused.get(timeout=0)
    with pytest.raises(NotFoundError, match="not deployed"):
        refused.object_id  # noqa: B018  # reading it is the test


def test_cancelled_async_spawns_leave_the_process_able_to_spawn(cluster: Cluster) -> None:
    """Abandoned spawn.aio calls (a timeout, a client that gave up) are either never
    sent or sent and answered; they used to kill the sender thread, after which every
    spawn of the process hung."""

    async def scenario() -> list[rayfn.FunctionCall]:
        for i in range(25):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(jobs.echo.spawn.aio(i), timeout=1e-6)
        tasks = [asyncio.create_task(jobs.echo.spawn.aio(i)) for i in range(25)]
        await asyncio.sleep(0)  # each is waiting for its call to be accepted
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        spawns = [jobs.echo.spawn.aio(1000 + i) for i in range(100)]
        return await asyncio.wait_for(asyncio.gather(*spawns), timeout=60)

    calls = asyncio.run(scenario())
    assert len({c.object_id for c in calls}) == 100
    results = rayfn.FunctionCall.gather(*calls)
    assert [r["args"] for r in results] == [[1000 + i] for i in range(100)]


def test_a_cancelled_get_aio_does_not_unsend_its_call(cluster: Cluster) -> None:
    """A get.aio that gives up while its call waits in the sender's queue leaves the
    call alone: spawn() returned it, so it must run."""
    jobs.echo.spawn(-1).get(timeout=60)  # a handle's first spawn waits for the registry

    async def scenario() -> rayfn.FunctionCall:
        calls = [jobs.echo.spawn(i) for i in range(1100)]  # the sender is busy with these
        last = calls[-1]
        waiting = asyncio.create_task(last.get.aio(timeout=60))
        await asyncio.sleep(0)  # the get waits for the registry to accept the call
        accepted = last._accepted  # the future the sender answers once the registry has it
        assert isinstance(accepted, Future) and not accepted.done(), "answered too soon"
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return last

    last = asyncio.run(scenario())
    assert last.get(timeout=60) == {"args": [1099], "kwargs": {}}
    assert jobs.echo.spawn(7).get(timeout=60)["args"] == [7]  # the sender lives on
