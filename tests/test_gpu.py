"""GPU requests reach Ray: a two-node cluster (ray.cluster_utils.Cluster) whose second
node declares two A100s. Nothing here needs a real GPU."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import rayfn
from rayfn.exception import StartupTimeoutError
from tests.apps import gpu_jobs
from tests.conftest import multinode

pytestmark = pytest.mark.timeout(240)
S = rayfn.CallStatus


@pytest.fixture(scope="module")
def gpu_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A CPU head and an "A100" worker node; yields the worker's node id."""
    gpu = {"num_cpus": 1, "num_gpus": 2, "resources": {"accelerator_type:A100": 1}}
    with multinode(tmp_path_factory.mktemp("gpu-home"), {"num_cpus": 1}, [gpu]) as (_, nodes):
        gpu_jobs.app.deploy()
        yield nodes[0].node_id


def test_a100_call_runs_on_the_gpu_node_and_sees_its_gpu(gpu_node: str) -> None:
    where = gpu_jobs.on_a100.remote()
    assert where["node"] == gpu_node
    assert where["gpu_ids"] and where["cuda_visible_devices"] in ("0", "1")
    assert where["cuda_visible_devices"] == where["gpu_ids"][0]


def test_a_call_that_asks_for_no_gpu_sees_none(gpu_node: str) -> None:
    where = gpu_jobs.on_cpu.remote()
    assert (where["gpu_ids"], where["cuda_visible_devices"]) == ([], "")


def test_fallback_list_picks_the_type_the_cluster_has(gpu_node: str) -> None:
    assert gpu_jobs.h100_or_a100.remote()["node"] == gpu_node


def test_h100_waits_without_blocking_other_functions(gpu_node: str) -> None:
    waiting = gpu_jobs.on_h100.spawn()
    assert gpu_jobs.on_cpu.remote()["node"]  # other functions run meanwhile
    assert gpu_jobs.on_a100.remote()["node"] == gpu_node
    time.sleep(1)
    assert waiting.status().status is S.PENDING  # with Ray, waiting for an H100 node
    assert waiting.cancel().status is S.CANCELLED


def test_startup_timeout_fails_a_call_no_node_can_run(gpu_node: str) -> None:
    call = gpu_jobs.on_h100_or_give_up.spawn()
    started = time.monotonic()
    with pytest.raises(StartupTimeoutError, match=r"did not start within .* 2 s.*1 GPU \(H100\)"):
        call.get(timeout=60)
    assert time.monotonic() - started < 15
    info = call.status()
    assert info.status is S.FAILED
    assert [a.outcome for a in info.attempts] == ["not_started"]
