"""Shared fixtures: real Ray clusters, started the way rayfn starts its background
cluster (token auth included) in a private ``RAYFN_HOME``, and stopped by their pid
afterwards. Nothing here mocks Ray.

The ``cluster`` fixture is one cluster shared by every module that asks for it (Ray's
``ray_start_regular_shared``, for a session): starting one takes 15-30 s on a small
machine. Between modules it is reset to what a fresh one is: every app stopped and its
unfinished calls cancelled, Serve shut down, every CPU free again. A module that kills
rayfn's actors or needs other start arguments says
``pytestmark = pytest.mark.own_cluster(**start)`` and gets a cluster of its own.

The modules on the shared cluster run first, and it is stopped once no test left needs
it, so no two clusters of one pytest process are up at once (the other modules start
their own). ``make test`` runs two such processes side by side (pytest-xdist,
``--dist loadfile``: a module stays whole in one of them): the suite mostly waits on
processes starting and calls sleeping, so two halve its time on two cores. Every
cluster takes free ports, and its own ``RAYFN_HOME``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import serve

import rayfn
from rayfn import _connection, _local_cluster

ROOT = Path(__file__).resolve().parent.parent
TEST_MAX_RESULT_BYTES = 8 * 1024 * 1024
# Ray settings of every test cluster, for the suite's time; none changes what a test shows.
TEST_CLUSTER_ENV = {
    # Stop without draining the node first: Ray waits up to 30 s for it to go idle, and
    # rayfn's actors never let it (a test cluster's work is done when it is stopped).
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    # Serve gives up on a web function whose replica fails to start after one try, not
    # three (each a new process): tests of a failed deploy wait for that.
    "RAY_SERVE_MAX_PER_REPLICA_RETRY_COUNT": "1",
}


@dataclass(frozen=True)
class Cluster:
    home: Path
    record: _local_cluster.ClusterRecord

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should use this cluster."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env["RAYFN_HOME"] = str(self.home)
        env["PYTHONPATH"] = str(ROOT)
        return env

    def python(self, code: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a fresh Python process connected to this cluster."""
        return subprocess.run(
            [sys.executable, "-c", code],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cli(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``rayfn`` command line against this cluster (``env``: added)."""
        rayfn = Path(sys.executable).parent / "rayfn"
        return subprocess.run(
            [str(rayfn), *args],
            env={**self.env(), **(env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def pid_gone(pid: int) -> bool:
    """Whether no process has this pid (any more)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def multinode(
    home: Path, head: dict[str, Any], workers: list[dict[str, Any]]
) -> Iterator[list[Any]]:
    """A ``ray.cluster_utils.Cluster`` on this machine, with token auth and this
    process connected. rayfn's actors are created while the head is the only node, so
    removing a worker node never takes them down. Yields the worker nodes."""
    from ray.cluster_utils import Cluster as RayCluster

    token = home / "auth_token"
    token.write_text("test-token-" + os.urandom(8).hex())
    token.chmod(0o600)
    saved = {
        k: os.environ.get(k)
        for k in ("RAY_ADDRESS", "RAYFN_HOME", *_local_cluster.NO_GPU_UNASKED_ENV)
    }
    os.environ["RAYFN_HOME"] = str(home)
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update(_local_cluster.NO_GPU_UNASKED_ENV)  # as rayfn starts its clusters
    _connection._use_token(str(token))
    small = {"object_store_memory": 150 * 1024 * 1024}
    ray_cluster = RayCluster(
        initialize_head=True, head_node_args={"include_dashboard": False, **small, **head}
    )
    try:
        os.environ["RAY_ADDRESS"] = ray_cluster.address
        _connection.connect()
        _connection.control(), _connection.registry()
        _connection.registry().stats().result()
        nodes = [ray_cluster.add_node(**small, **worker) for worker in workers]
        ray_cluster.wait_for_nodes()
        yield ray_cluster, nodes
    finally:
        ray.shutdown()
        ray_cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def running_cluster(home: Path, **start: Any) -> Iterator[Cluster]:
    """A real single-node Ray cluster started as rayfn starts its background one, with
    this process connected to it; ``start`` overrides ``_local_cluster.start``'s
    arguments."""
    arguments: dict[str, Any] = {
        "port": free_port(),
        "num_cpus": 2,
        "include_dashboard": False,
        "object_store_memory": 300 * 1024 * 1024,
        **start,
        "extra_env": {**TEST_CLUSTER_ENV, **start.get("extra_env", {})},
    }
    record = _local_cluster.start(home, **arguments)
    saved = {k: os.environ.get(k) for k in ("RAYFN_HOME", "RAY_ADDRESS", "RAYFN_MAX_RESULT_BYTES")}
    os.environ["RAYFN_HOME"] = str(home)
    os.environ.pop("RAY_ADDRESS", None)
    # Apps deployed meanwhile send their workers this result size limit: a small one
    # lets a test cross it cheaply.
    os.environ["RAYFN_MAX_RESULT_BYTES"] = str(TEST_MAX_RESULT_BYTES)
    try:
        _connection.connect()
        yield Cluster(home, record)
    finally:
        ray.shutdown()
        # Nothing to drain gracefully for: a test cluster's work is done.
        _local_cluster.stop(home, grace=3)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A real single-node Ray cluster: the shared one (reset after the module, see
    ``pytest_runtest_teardown``); or, for a module marked ``own_cluster``, one of its
    own for the whole module."""
    own = request.node.get_closest_marker("own_cluster")
    if own is None:
        yield _shared.get(tmp_path_factory)
        return
    _shared.stop()
    with running_cluster(tmp_path_factory.mktemp("rayfn-home"), **own.kwargs) as running:
        yield running


class _SharedCluster:
    """The cluster of the ``cluster`` fixture, kept from one module to the next."""

    # How long the CPUs of stopped apps' calls and containers may take to come free.
    FREE_WAIT_S = 60.0

    def __init__(self) -> None:
        self._stack: contextlib.ExitStack | None = None
        self._cluster: Cluster | None = None

    def get(self, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
        if self._cluster is None:
            stack = contextlib.ExitStack()
            self._cluster = stack.enter_context(
                running_cluster(tmp_path_factory.mktemp("rayfn-shared"))
            )
            self._stack = stack
        return self._cluster

    def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._cluster = self._stack, None, None
            stack.close()

    def reset(self) -> None:
        """Back to what a fresh cluster is, for the next module: no app deployed, no
        call unfinished, Serve not running, every CPU free."""
        if self._cluster is None:
            return
        control = _connection.control()
        for app in control.list_apps().result():
            control.stop(app.name, "The test module that ran it ended.").result()
        # Calls of apps stopped earlier in the module would finish on their own.
        for status in rayfn.CallStatus:
            if not status.is_terminal:
                for call in rayfn.list_calls(status=status, limit=10_000):
                    rayfn.FunctionCall.from_id(call.call_id).cancel()
        serve.shutdown()
        deadline = time.monotonic() + self.FREE_WAIT_S
        while (free := ray.available_resources().get("CPU")) != (
            total := ray.cluster_resources().get("CPU")
        ):
            assert time.monotonic() < deadline, f"{free} of {total} CPUs free after a module"
            time.sleep(0.2)


_shared = _SharedCluster()


def _uses_shared_cluster(item: pytest.Item) -> bool:
    return "cluster" in item.fixturenames and item.get_closest_marker("own_cluster") is None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules on the shared cluster first; last among them those whose last tests
    start a cluster of their own, so it is stopped before those run. Tests keep their
    order within a module, and modules their file order otherwise."""
    by_module: dict[Any, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(item.module, []).append(item)

    def rank(module_items: list[pytest.Item]) -> tuple[bool, bool]:
        shared = any(_uses_shared_cluster(item) for item in module_items)
        return not shared, shared and not _uses_shared_cluster(module_items[-1])

    items[:] = [item for group in sorted(by_module.values(), key=rank) for item in group]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Once a test and the fixtures it alone used are torn down: stop the shared
    cluster if no test left needs it, or reset it when the next test is another
    module's (also when a teardown failed)."""
    try:
        yield
    finally:
        items = item.session.items
        rest = items[items.index(item) + 1 :] if nextitem is not None else []
        if not any(_uses_shared_cluster(later) for later in rest):
            _shared.stop()
        elif nextitem is not None and nextitem.module is not item.module:
            _shared.reset()


def pytest_sessionfinish() -> None:
    _shared.stop()
