"""Image options become the runtime_env of an app's calls: env vars, a local package
the workers could not import otherwise, and a local directory as working directory."""

from __future__ import annotations

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
        .add_local_dir(EXTRAS / "data", remote_path="/data")
    )
    app = rayfn.App("test-images", image=image)

    @app.function(cpu=0.5)
    def look() -> dict:
        import os

        import helper_pkg  # only here through add_local_python_source

        return {
            "GREETING": os.environ.get("GREETING"),
            "helper": helper_pkg.SHOUT,
            "notes": Path("notes.txt").read_text().strip(),
        }

    with app.run():
        assert look.remote() == {
            "GREETING": "hello from the image",
            "helper": "from helper_pkg",
            "notes": "data file contents",
        }


def test_image_mistakes_are_clear() -> None:
    with pytest.raises(InvalidError, match="No local module 'no_such_module_here'"):
        rayfn.Image.debian_slim().add_local_python_source("no_such_module_here")
    with pytest.raises(InvalidError, match="is not a directory"):
        rayfn.Image.debian_slim().add_local_dir("/no/such/dir", remote_path="/x")
    with pytest.raises(InvalidError, match="dict of strings"):
        rayfn.Image.debian_slim().env({"A": 1})  # type: ignore[dict-item]
