"""@app.cls on a real cluster: @enter once per container, the pool within
max_containers, method calls fetchable by id, @exit at scale-down, @concurrent, and
idle containers stopped early when other calls wait for their CPUs."""

from __future__ import annotations

import time

import pytest

import rayfn
from rayfn.exception import InvalidError
from tests.apps import classes
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module", autouse=True)
def deployed(cluster: Cluster) -> None:
    classes.app.deploy()


def test_enter_runs_once_per_container_and_the_pool_stays_within_max(cluster: Cluster) -> None:
    model = classes.Model()
    calls = [model.predict.spawn(i) for i in range(20)]
    ids = [c.object_id for c in calls]
    results = [rayfn.FunctionCall.from_id(i).get(timeout=90) for i in ids]
    assert [value for value, _ in results] == [10 * i for i in range(20)]
    containers = {container for _, container in results}
    assert 1 <= len(containers) <= 2  # max_containers=2
    entered = rayfn.Dict.from_name("test-classes-entered")
    assert set(entered.keys()) == containers  # @enter ran once per container, no more
    # The containers go after scaledown_window (2 s) idle, running @exit first.
    exited = rayfn.Dict.from_name("test-classes-exited", create_if_missing=True)
    deadline = time.monotonic() + 30
    while set(exited.keys()) != containers:
        assert time.monotonic() < deadline, (set(exited.keys()), containers)
        time.sleep(0.5)


def test_methods_behave_as_functions(cluster: Cluster) -> None:
    model = rayfn.Cls.from_name("test-classes", "Model")()
    assert model.predict.remote(4)[0] == 40
    assert [value for value, _ in model.predict.map([1, 2, 3])] == [10, 20, 30]
    with pytest.raises(ValueError, match="model failed"):
        model.fail.remote()
    with pytest.raises(InvalidError, match=r"Model\.predict\(x: int\).* cannot take"):
        model.predict.spawn(1, 2)
    with pytest.raises(AttributeError, match="no method 'nope'"):
        model.nope  # noqa: B018


def test_concurrent_inputs_share_one_container(cluster: Cluster) -> None:
    server = classes.Server()
    windows = list(server.handle.map([1.0] * 4))
    # One container (max_containers=1) ran all 4 at once: every call started before
    # any ended. Run one after another, they could not overlap.
    assert max(start for start, _ in windows) < min(end for _, end in windows), windows


def test_class_options_are_checked() -> None:
    app = rayfn.App("bad-classes")
    with pytest.raises(InvalidError, match=r"no @rayfn\.method"):

        @app.cls()
        class Empty:
            pass

    with pytest.raises(InvalidError, match="max_inputs"):
        rayfn.concurrent(max_inputs=0)
    with pytest.raises(InvalidError, match="takes no arguments"):
        classes.Model(1)  # type: ignore[call-arg]


def test_idle_containers_make_way_for_calls_that_wait(cluster: Cluster) -> None:
    # Two containers of 1 CPU each, started and idle: the whole 2-CPU cluster, kept
    # for their 60 s scaledown_window unless something else waits for the CPUs.
    warm = classes.Warm()
    containers = {call.get(timeout=90) for call in [warm.where.spawn(1.0) for _ in range(2)]}
    assert len(containers) == 2
    started = time.monotonic()
    calls = [classes.crunch.spawn(0.5) for _ in range(3)]
    assert [call.get(timeout=120) for call in calls] == [0.5] * 3
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"3 calls took {elapsed:.1f} s behind idle containers"
    exited = rayfn.Dict.from_name("test-classes-warm-exited", create_if_missing=True)
    deadline = time.monotonic() + 30
    while set(exited.keys()) != containers:  # stopped early, @exit all the same
        assert time.monotonic() < deadline, (set(exited.keys()), containers)
        time.sleep(0.2)
