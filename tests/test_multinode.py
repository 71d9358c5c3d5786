"""A worker node removed mid-call: its calls are retried on another node; a volume kept
in an object store, shared by calls on other nodes through commit and reload
(ray.cluster_utils.Cluster, three nodes on this machine)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rayfn
from tests.apps import faults
from tests.conftest import multinode

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def cluster_and_workers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, list[Any]]]:
    # The head runs rayfn's actors and no calls (no CPU); two nodes run calls. Volumes
    # live in an object store (a file:// URL: the same code as for s3:// or gs://).
    spec = [{"num_cpus": 1}, {"num_cpus": 1}]
    store = tmp_path_factory.mktemp("store")
    saved = os.environ.get("RAYFN_VOLUMES_ROOT")
    os.environ["RAYFN_VOLUMES_ROOT"] = f"file://{store}"
    try:
        with multinode(tmp_path_factory.mktemp("multinode"), {"num_cpus": 0}, spec) as found:
            faults.app.deploy()
            yield found
    finally:
        if saved is None:
            os.environ.pop("RAYFN_VOLUMES_ROOT", None)
        else:
            os.environ["RAYFN_VOLUMES_ROOT"] = saved


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


def test_a_volume_in_an_object_store_is_shared_through_commit_and_reload(
    cluster_and_workers: tuple[Any, list[Any]], tmp_path: Path
) -> None:
    vol = rayfn.Volume.from_name("stored", create_if_missing=True)
    app = rayfn.App("test-stored-volume")
    mount = str(tmp_path / "mnt")

    @app.function(volumes={mount: vol})
    def write(text: str) -> None:
        Path(mount, "note.txt").write_text(text)
        vol.commit()  # to the store: other nodes, and the client, see it from now on

    @app.function(volumes={mount: vol})
    def read() -> str:
        vol.reload()
        return Path(mount, "note.txt").read_text()

    with app.run():
        write.remote("written on a node")
        assert b"".join(vol.read_file("note.txt")) == b"written on a node"
        assert read.remote() == "written on a node"
        with vol.batch_upload(force=True) as batch:
            batch.put_file(_text(tmp_path / "up.txt", "from the client"), "note.txt")
        assert read.remote() == "from the client"  # reload() brought the store's file
    root = os.environ["RAYFN_VOLUMES_ROOT"].removeprefix("file://")
    assert Path(root, "stored", "note.txt").read_text() == "from the client"


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
