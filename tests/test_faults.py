"""Faults a job queue must survive, on a real cluster: killed workers, a killed control
actor, a client killed right after spawning, a killed registry. Only processes the test
started (or that run its calls) are killed, by pid."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import ray

import rayfn
from rayfn import _connection
from rayfn.exception import ExecutionError
from rayfn.runtime.constants import CONTROL_ACTOR_NAME, NAMESPACE
from tests.apps import faults
from tests.conftest import Cluster

# A cluster of its own: it kills the control actor.
pytestmark = [pytest.mark.timeout(180), pytest.mark.own_cluster()]


@pytest.fixture(scope="module", autouse=True)
def deployed(cluster: Cluster) -> None:
    faults.app.deploy()


def _first_pid(folder: Path) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        path = folder / "pids"
        if path.exists() and path.read_text().strip():
            return int(path.read_text().split()[0])
        time.sleep(0.1)
    raise AssertionError("the call never started")


def test_worker_killed_mid_call_is_retried(tmp_path: Path) -> None:
    call = faults.killed_once.spawn(str(tmp_path))
    os.kill(_first_pid(tmp_path), signal.SIGKILL)
    assert call.get(timeout=90) == "retried after the kill"
    assert [a.outcome for a in call.status().attempts] == ["crashed", "succeeded"]


def test_worker_killed_with_no_retries_left_fails_naming_the_crash(tmp_path: Path) -> None:
    call = faults.killed_for_good.spawn(str(tmp_path))
    os.kill(_first_pid(tmp_path), signal.SIGKILL)
    with pytest.raises(ExecutionError, match="could not run to its end") as raised:
        call.get(timeout=90)
    assert "Worker" in str(raised.value) or "died" in str(raised.value).lower()
    info = call.status()
    assert info.status is rayfn.CallStatus.FAILED
    assert info.error is not None


def test_control_actor_killed_restarts_with_its_deployments(cluster: Cluster) -> None:
    control = ray.get_actor(CONTROL_ACTOR_NAME, namespace=NAMESPACE)
    ray.kill(control, no_restart=False)
    deadline = time.monotonic() + 60
    while True:
        try:
            found = rayfn.Function.lookup("test-faults", "double")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert found.remote(21) == 42
    assert "test-faults" in [a.name for a in _connection.control().list_apps().result()]


def test_calls_of_a_client_killed_right_after_spawning_all_complete(cluster: Cluster) -> None:
    spawner = cluster.python(
        "import os, rayfn\n"
        "f = rayfn.Function.from_name('test-faults', 'double')\n"
        "ids = [f.spawn(i).object_id for i in range(20)]\n"
        "print(' '.join(ids), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    assert spawner.returncode == -9, spawner.stderr
    ids = spawner.stdout.split()
    assert len(ids) == 20
    fetcher = cluster.python(
        "import json, sys, rayfn\n"
        f"ids = {ids!r}\n"
        "print(json.dumps([rayfn.FunctionCall.from_id(i).get(timeout=90) for i in ids]))\n"
    )
    assert fetcher.returncode == 0, fetcher.stderr
    assert fetcher.stdout.strip().splitlines()[-1] == str([2 * i for i in range(20)])
