"""A worker node removed mid-call: its calls are retried on another node
(ray.cluster_utils.Cluster, three nodes on this machine)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps import faults
from tests.conftest import multinode

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def cluster_and_workers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, list[Any]]]:
    # The head runs rayfn's actors and no calls (no CPU); two nodes run calls.
    spec = [{"num_cpus": 1}, {"num_cpus": 1}]
    with multinode(tmp_path_factory.mktemp("multinode"), {"num_cpus": 0}, spec) as found:
        faults.app.deploy()
        yield found


def test_calls_on_a_removed_node_are_retried_on_another(
    cluster_and_workers: tuple[Any, list[Any]], tmp_path: Path
) -> None:
    ray_cluster, workers = cluster_and_workers
    call = faults.on_some_node.spawn(str(tmp_path))
    deadline = time.monotonic() + 60
    while not ((tmp_path / "pids").exists() and (tmp_path / "pids").read_text().strip()):
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.1)
    first_node = (tmp_path / "pids").read_text().split()[1]
    victim = next(n for n in workers if n.node_id == first_node)
    ray_cluster.remove_node(victim, allow_graceful=False)
    survivor = call.get(timeout=120)
    assert survivor != first_node
    assert survivor in {n.node_id for n in workers}
    assert [a.outcome for a in call.status().attempts] == ["crashed", "succeeded"]
