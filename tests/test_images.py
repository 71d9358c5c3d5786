"""Image options become the runtime_env of an app's calls: env vars, a local package
the workers could not import otherwise, and a local directory as working directory."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rayfn
from rayfn.exception import InvalidError
from tests.conftest import ROOT, Cluster

pytestmark = pytest.mark.timeout(240)

EXTRAS = ROOT / "tests" / "apps" / "image_extras"


@pytest.fixture
def helper_importable_here() -> Iterator[None]:
    sys.path.insert(0, str(EXTRAS))
    try:
        yield
    finally:
        sys.path.remove(str(EXTRAS))
        sys.modules.pop("helper_pkg", None)


def test_env_local_source_and_dir_reach_the_calls(
    cluster: Cluster, helper_importable_here: None
) -> None:
    image = (
        rayfn.Image.debian_slim()
        .env({"GREETING": "hello from the image"})
        .add_local_python_source("helper_pkg")
        .add_local_dir(EXTRAS / "data", remote_path="/tmp/rayfn-test-images/data")
        .add_local_file(EXTRAS / "data" / "notes.txt", remote_path="copies/notes.txt")
        .workdir("/tmp/rayfn-test-images/work")
    )
    app = rayfn.App("test-images", image=image)

    @app.function(cpu=0.5)
    def look() -> dict:
        import os

        import helper_pkg  # only here through add_local_python_source

        return {
            "GREETING": os.environ.get("GREETING"),
            "helper": helper_pkg.SHOUT,
            "notes": Path("/tmp/rayfn-test-images/data/notes.txt").read_text().strip(),
            "cwd": os.getcwd(),
            "file": Path("copies/notes.txt").read_text().strip(),  # under the workdir
        }

    with app.run():
        assert look.remote() == {
            "GREETING": "hello from the image",
            "helper": "from helper_pkg",
            "notes": "data file contents",
            "cwd": "/tmp/rayfn-test-images/work",
            "file": "data file contents",
        }


def test_image_mistakes_are_clear() -> None:
    with pytest.raises(InvalidError, match="No local module 'no_such_module_here'"):
        rayfn.Image.debian_slim().add_local_python_source("no_such_module_here")
    with pytest.raises(InvalidError, match="is not a directory"):
        rayfn.Image.debian_slim().add_local_dir("/no/such/dir", remote_path="/x")
    with pytest.raises(InvalidError, match="dict of strings"):
        rayfn.Image.debian_slim().env({"A": 1})  # type: ignore[dict-item]


def test_each_function_runs_in_its_own_image_modal_style(cluster: Cluster) -> None:
    """Item 1 of issue 17: `image=` on the app, a function and a class, run as Modal's
    docs run programs."""
    done = cluster.cli("run", "tests/apps/modal_style/images.py", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plain: the app's image" in done.stdout
    assert "own: its own image" in done.stdout
    assert "class: the class's image" in done.stdout


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("apt", r"needs the system packages surely-absent-apt-package, which the cluster"),
        ("python", r"asks for Python 3\.8, but the cluster runs Python 3\.\d+"),
        ("registry", r"cannot run containers \(Ray's image_uri needs podman"),
    ],
)
def test_an_image_the_cluster_cannot_give_fails_the_deploy_in_one_sentence(
    cluster: Cluster, case: str, says: str
) -> None:
    done = cluster.cli(
        "deploy", "tests/apps/modal_style/images_refused.py", env={"IMAGE_CASE": case}
    )
    if case == "registry" and shutil.which("podman"):  # this machine runs containers
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode == 1
    assert re.search(r"Error: modal-style-images-refused\.f .*" + says, done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    listed = cluster.cli("app", "list")
    assert "modal-style-images-refused" not in listed.stdout  # nothing was deployed


def test_system_packages_the_nodes_have_pass_the_check(cluster: Cluster) -> None:
    done = cluster.cli(
        "deploy", "tests/apps/modal_style/images_refused.py", env={"IMAGE_CASE": "apt-present"}
    )
    assert done.returncode == 0, done.stderr
    assert rayfn.Function.from_name("modal-style-images-refused", "f").remote() == 1
