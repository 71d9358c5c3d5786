"""cluster.yaml is a valid Ray cluster launcher config, and a GPU request really
reaches Ray's autoscaler: on a head with cluster.yaml's node types (provider swapped
for Ray's local ``fake_multinode``, which starts nodes as processes on this machine)
and no GPU node, a ``gpu="A100"`` call makes the autoscaler launch a GPU worker node,
runs there, and the node goes away once idle."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

import rayfn
from tests.conftest import ROOT, Cluster, free_port, running_cluster

pytestmark = pytest.mark.timeout(300)

CLUSTER_YAML = ROOT / "cluster.yaml"
FAKE_HEAD_TYPE = "ray.head.default"  # the head's node type in the fake provider


def _cluster_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CLUSTER_YAML.read_text())
    return loaded


def test_cluster_yaml_passes_rays_own_validation() -> None:
    config = _cluster_yaml()
    validate_config(prepare_config(copy.deepcopy(config)))
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu_types = [t for t in types.values() if t["resources"].get("GPU")]
    assert gpu_types and all(t["min_workers"] == 0 for t in gpu_types)
    assert any("accelerator_type:A100" in t["resources"] for t in gpu_types)
    assert any("rayfn" in command for command in config["setup_commands"])
    # The validator is real: a misspelt field fails it.
    broken = copy.deepcopy(config)
    broken["available_node_types"]["cpu_worker"]["min_wrokers"] = 1
    with pytest.raises(jsonschema.ValidationError, match="min_wrokers"):
        validate_config(prepare_config(broken))


def fake_autoscaling_config(gcs_address: str) -> dict[str, Any]:
    """cluster.yaml's node types on Ray's fake_multinode provider: node_config and
    setup commands dropped (nothing to install: nodes are local processes), a small
    object store per node, and a short idle timeout."""
    source = _cluster_yaml()
    head_type = source["head_node_type"]
    types: dict[str, Any] = {}
    for name, node_type in source["available_node_types"].items():
        resources = {**node_type["resources"], "object_store_memory": 150 * 2**20}
        if name == head_type:
            types[FAKE_HEAD_TYPE] = {"resources": resources, "node_config": {}, "max_workers": 0}
        else:
            types[name] = {
                "resources": resources,
                "node_config": {},
                "min_workers": node_type.get("min_workers", 0),
                "max_workers": node_type["max_workers"],
            }
    return {
        "cluster_name": "rayfn-fake",
        "max_workers": source["max_workers"],
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": types,
        "head_node_type": FAKE_HEAD_TYPE,
        "auth": {},
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.1,  # 6 s
        "docker": {},
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


@pytest.fixture(scope="module")
def autoscaling_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("rayfn-autoscaling")
    port = free_port()
    config = home / "autoscaling.yaml"
    config.write_text(json.dumps(fake_autoscaling_config(f"127.0.0.1:{port}")))
    with running_cluster(
        home,
        port=port,
        num_cpus=1,
        object_store_memory=200 * 2**20,
        autoscaling_config=config,
        extra_env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"},
    ) as head:
        yield head


def _alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n["Alive"]]


def test_gpu_call_makes_the_autoscaler_add_a_gpu_node_that_goes_when_idle_taking_no_rayfn_actor(
    autoscaling_head: Cluster,
) -> None:
    app = rayfn.App("test-autoscaling")

    @app.function(gpu="A100", cpu=1, startup_timeout=120)
    def where() -> dict[str, Any]:
        # Created from the GPU node: a store actor asking for nothing would land here
        # (its creator's node) and die with the node once the autoscaler removes it.
        rayfn.Dict.from_name("made-on-the-gpu-node", create_if_missing=True)["x"] = 42
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "gpus": ray.get_gpu_ids(),
        }

    app.deploy()
    head_nodes = {n["NodeID"] for n in _alive_nodes()}
    assert not any(n["Resources"].get("GPU") for n in _alive_nodes())

    ran = where.spawn().get(timeout=180)

    assert ran["node"] not in head_nodes, "the call ran on the head, not a new node"
    gpu_node = next(n for n in ray.nodes() if n["NodeID"] == ran["node"])
    assert gpu_node["Resources"].get("GPU") == 1
    assert gpu_node["Resources"].get("accelerator_type:A100") == 1
    assert ran["gpus"]

    deadline = time.monotonic() + 120
    while any(n["NodeID"] == ran["node"] for n in _alive_nodes()):
        assert time.monotonic() < deadline, "the idle GPU node was never removed"
        time.sleep(1)
    # rayfn's actors live on the head, so the node took none of them with it.
    assert rayfn.Dict.from_name("made-on-the-gpu-node")["x"] == 42
    assert rayfn.list_calls(app="test-autoscaling", limit=1)  # the registry still answers
    assert rayfn.Function.from_name("test-autoscaling", "where").hydrate()  # and control


def test_cluster_up_refuses_an_invalid_config_in_one_line(tmp_path: Path) -> None:
    broken = _cluster_yaml()
    broken["available_node_types"]["cpu_worker"]["min_wrokers"] = 1
    config = tmp_path / "broken.yaml"
    config.write_text(yaml.safe_dump(broken))
    rayfn_cli = str(Path(sys.executable).parent / "rayfn")
    for args, message in [
        ([str(config)], "is not a valid Ray cluster config: Additional properties"),
        ([str(tmp_path / "missing.yaml")], "No cluster config at"),
    ]:
        ran = subprocess.run(
            [rayfn_cli, "cluster", "up", *args, "-y"], capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 1
        assert message in ran.stderr
        assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
