"""Dict and Queue shared by calls, secrets as environment variables, and schedules, on
a real cluster."""

from __future__ import annotations

import itertools
import json
import queue
import time
from collections.abc import Callable

import pytest
import ray

import rayfn
from rayfn.exception import InvalidError, NotFoundError
from rayfn.runtime.constants import STORE_MAX_BYTES
from tests.apps import shared
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(180)

SECRET_VALUE = "sekrit-123"


@pytest.fixture(scope="module", autouse=True)
def deployed(cluster: Cluster) -> None:
    created = cluster.cli("secret", "create", "test-api", f"API_KEY={SECRET_VALUE}")
    assert created.returncode == 0, created.stderr
    shared.app.deploy()


def test_dict_basics(cluster: Cluster) -> None:
    with rayfn.Dict.ephemeral() as d:
        d["a"] = 1
        d[("tuple", 2)] = {"nested": [1, 2]}
        assert d["a"] == 1 and d.get("missing", "dflt") == "dflt"
        assert "a" in d and "b" not in d
        assert len(d) == 2
        assert d.put("lock", "first", skip_if_exists=True) is True
        assert d.put("lock", "second", skip_if_exists=True) is False
        assert d["lock"] == "first"
        assert d.pop("a") == 1 and d.pop("a", None) is None
        with pytest.raises(KeyError):
            d["a"]
        assert sorted(map(str, d.keys())) == ["('tuple', 2)", "lock"]
        d.clear()
        assert len(d) == 0
    named = rayfn.Dict.from_name("test-named-dict", create_if_missing=True)
    named["x"] = 42
    assert rayfn.Dict.from_name("test-named-dict")["x"] == 42  # another handle, same Dict
    rayfn.Dict.delete("test-named-dict")
    with pytest.raises(NotFoundError, match="create_if_missing=True"):
        rayfn.Dict.from_name("test-named-dict")["x"]


def test_queue_basics(cluster: Cluster) -> None:
    with rayfn.Queue.ephemeral() as q:
        q.put_many([1, 2, 3])
        q.put("four")
        assert len(q) == 4
        assert q.get() == 1
        assert q.get_many(2) == [2, 3]
        assert q.get_many(10, timeout=1) == ["four"]
        started = time.monotonic()
        with pytest.raises(queue.Empty):
            q.get(timeout=0.5)
        assert 0.4 < time.monotonic() - started < 5
        with pytest.raises(queue.Empty):
            q.get(block=False)


def test_scatter_gather_with_a_dict_lock(cluster: Cluster) -> None:
    n = 6
    with rayfn.Dict.ephemeral() as board:
        parent = shared.parent.spawn(n, board)
        part_ids = parent.get(timeout=60)
        assert len(part_ids) == n
        deadline = time.monotonic() + 90
        while "gatherer_id" not in board:
            assert time.monotonic() < deadline, dict(board.items())
            time.sleep(0.2)
        total = rayfn.FunctionCall.from_id(board["gatherer_id"]).get(timeout=60)
        assert total == sum(i * i for i in range(n))
        assert sorted(board[f"id:{i}"] for i in range(n)) == sorted(part_ids)
    gatherers = rayfn.list_calls(app="test-shared", function="gather")
    assert len(gatherers) == 1  # the lock let exactly one part spawn it

    # The call graph: the parent, its n parts, and the gatherer under the last part.
    (root,) = parent.get_call_graph()
    assert root.call_id == parent.object_id and root.function_name == "parent"
    assert sorted(c.call_id for c in root.children) == sorted(part_ids)
    assert all(c.status is rayfn.CallStatus.SUCCEEDED for c in root.children)
    grandchildren = [g for c in root.children for g in c.children]
    assert [g.call_id for g in grandchildren] == [gatherers[0].call_id]


def test_producer_and_consumers_over_an_ephemeral_queue(cluster: Cluster) -> None:
    with rayfn.Queue.ephemeral() as jobs, rayfn.Dict.ephemeral() as results:
        consumers = [shared.consumer.spawn(jobs, results, name) for name in ("a", "b")]
        shared.producer.remote(jobs, 100, len(consumers))
        handled = [c.get(timeout=90) for c in consumers]
        assert sum(handled) == 100
        assert len(results) == 100
        assert sorted(results.keys()) == list(range(100))
        assert all(v == k * 10 and who in ("a", "b") for k, (who, v) in results.items())
        assert len(jobs) == 0


def test_secrets_reach_the_function_and_nothing_else(cluster: Cluster) -> None:
    assert shared.read_env.remote() == {"API_KEY": SECRET_VALUE, "MODE": "inline-mode"}
    # Set for the call only: a later call without secrets in the same worker sees none.
    assert shared.read_env_plain.remote() == {"API_KEY": None, "MODE": None}
    failed = shared.fail_with_secret.spawn()
    with pytest.raises(ValueError) as raised:
        failed.get(timeout=60)
    shown = [
        cluster.cli("app", "list", "--json").stdout,
        cluster.cli("call", "list", "--json").stdout,
        cluster.cli("secret", "list", "--json").stdout,
        str(raised.value),
        "".join(getattr(raised.value, "__notes__", [])),
        repr(rayfn.Function.lookup("test-shared", "read_env").options),
    ]
    for text in shown:
        assert SECRET_VALUE not in text and "inline-mode" not in text
    listed = json.loads(shown[2])
    assert {"name": "test-api", "keys": ["API_KEY"]} in listed


def test_deploying_with_a_missing_secret_says_how_to_create_it(cluster: Cluster) -> None:
    app = rayfn.App("test-missing-secret")

    @app.function(secrets=[rayfn.Secret.from_name("no-such-secret")])
    def f() -> None: ...

    with pytest.raises(NotFoundError, match="rayfn secret create no-such-secret"):
        app.deploy()


def test_a_secret_without_its_required_keys_fails_the_deploy(cluster: Cluster) -> None:
    app = rayfn.App("test-required-keys")
    has = rayfn.Secret.from_name("test-api", required_keys=["API_KEY"])
    lacks = rayfn.Secret.from_name("test-api", required_keys=["API_KEY", "API_SECRET"])

    @app.function(secrets=[has])
    def f() -> None: ...

    app.deploy()  # test-api has API_KEY (tests/apps/shared.py's deploy made it)
    other = rayfn.App("test-required-keys-2")
    other.function(secrets=[lacks], name="g")(lambda: None)
    with pytest.raises(NotFoundError, match=r"Secret 'test-api' has no key API_SECRET"):
        other.deploy()
    with pytest.raises(InvalidError, match="required_keys must be a list"):
        rayfn.Secret.from_name("test-api", required_keys="API_KEY")


def _ticks(function: str) -> list[rayfn.CallInfo]:
    return rayfn.list_calls(app="test-schedule", function=function, limit=1000)


def test_period_schedule_fires_skips_overlaps_and_stops_with_the_app(cluster: Cluster) -> None:
    shared.scheduled.deploy()
    time.sleep(5.5)
    assert len(_ticks("tick")) >= 2
    stopped = cluster.cli("app", "stop", "test-schedule")
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(1)  # a tick spawned just before the stop is still listed
    after_stop = len(_ticks("tick"))
    time.sleep(3)
    assert len(_ticks("tick")) == after_stop

    # slow_tick runs 2 s every 0.5 s: ticks due while one runs are skipped.
    slow = sorted(_ticks("slow_tick"), key=lambda c: c.created_at)
    assert 1 <= len(slow) <= 4
    for earlier, later in itertools.pairwise(slow):
        assert earlier.finished_at is not None and later.created_at >= earlier.finished_at


def _wait_until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def _restart(store: rayfn.Dict | rayfn.Queue) -> None:
    """Kill the store's actor (Ray restarts it) and wait, through the same handle,
    until a new process answers."""
    before = ray.get(store._actor().debug_pid.remote())
    ray.kill(store._actor(), no_restart=False)
    _wait_until(lambda: store._ask(store._client().debug_pid()) != before)


def test_a_dict_whose_actor_died_comes_back_as_it_was(cluster: Cluster) -> None:
    store = rayfn.Dict.from_name("test-restarting-dict", create_if_missing=True)
    store.update({"kept": 1, ("a", "tuple"): [1, 2], "popped": 3, "replaced": "old"})
    store.pop("popped")
    store["replaced"] = "new"
    assert store.put("lock", "me", skip_if_exists=True)
    _restart(store)
    assert dict(store.items()) == {
        "kept": 1,
        ("a", "tuple"): [1, 2],
        "replaced": "new",
        "lock": "me",
    }
    assert not store.put("lock", "you", skip_if_exists=True)  # a lock table stays locked
    _restart(store)
    assert rayfn.Dict.from_name("test-restarting-dict")["kept"] == 1
    rayfn.Dict.delete("test-restarting-dict")
    with pytest.raises(NotFoundError, match="deleted since"):
        store["kept"]
    again = rayfn.Dict.from_name("test-restarting-dict", create_if_missing=True)
    assert len(again) == 0  # deleting it dropped what was persisted
    rayfn.Dict.delete("test-restarting-dict")


def test_a_queue_whose_actor_died_comes_back_in_order(cluster: Cluster) -> None:
    jobs = rayfn.Queue.from_name("test-restarting-queue", create_if_missing=True)
    jobs.put_many(["first", "second", "third", "fourth"])
    assert jobs.get(timeout=10) == "first"
    _restart(jobs)
    jobs.put("fifth")
    assert jobs.get_many(10, timeout=10) == ["second", "third", "fourth", "fifth"]
    _restart(jobs)
    assert len(jobs) == 0
    rayfn.Queue.delete("test-restarting-queue")
    with pytest.raises(NotFoundError, match="deleted since"):
        jobs.put("gone")


def test_a_store_refuses_a_change_past_its_size_limit(cluster: Cluster) -> None:
    with rayfn.Dict.ephemeral() as store:
        store["small"] = 1
        with pytest.raises(InvalidError, match="over the limit of 67108864 bytes per Dict"):
            store["big"] = b"x" * STORE_MAX_BYTES
        assert "big" not in store and store["small"] == 1  # refused whole
    with rayfn.Queue.ephemeral() as jobs:
        with pytest.raises(InvalidError, match="per Queue"):
            jobs.put_many([b"y" * (STORE_MAX_BYTES // 2)] * 3)
        assert len(jobs) == 0
