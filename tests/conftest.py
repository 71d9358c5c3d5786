"""Shared fixtures: one real Ray cluster per test module, started the way rayfn starts
its background cluster (token auth included) in a private ``RAYFN_HOME``, and stopped
by its pid afterwards. Nothing here mocks Ray."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray

from rayfn import _connection, _local_cluster

ROOT = Path(__file__).resolve().parent.parent
TEST_MAX_RESULT_BYTES = 8 * 1024 * 1024


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
    saved = {k: os.environ.get(k) for k in ("RAY_ADDRESS", "RAYFN_HOME")}
    os.environ["RAYFN_HOME"] = str(home)
    os.environ.pop("RAY_ADDRESS", None)
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
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real single-node Ray cluster for the whole test module."""
    with running_cluster(tmp_path_factory.mktemp("rayfn-home")) as running:
        yield running
