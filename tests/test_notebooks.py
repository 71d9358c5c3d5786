"""The notebooks in notebooks/, run top to bottom in a real Jupyter kernel (nbclient):
any cell that raises fails the test. The kernel gets this module's cluster through
RAYFN_HOME, as a user's notebook gets theirs; gpu_and_scaling starts its own."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT, Cluster, free_port

pytestmark = pytest.mark.timeout(420)

NOTEBOOKS = ROOT / "notebooks"


def _run(name: str, env: dict[str, str], workdir: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=env)
    return notebook


def _text(notebook: nbformat.NotebookNode) -> str:
    """Everything the cells printed."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_notebooks_are_committed_without_outputs() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["gpu_and_scaling.ipynb", "job_queue_web.ipynb", "quickstart.ipynb"]
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def test_quickstart(cluster: Cluster, tmp_path: Path) -> None:
    ran = _run("quickstart.ipynb", cluster.env(), tmp_path)
    printed = _text(ran)
    assert "square.remote(7) = 49" in printed
    assert "square.map: 100%" in printed  # the progress bar ran to the end
    assert "pending: Call fc-" in printed


def test_job_queue_web(cluster: Cluster, tmp_path: Path) -> None:
    env = {**cluster.env(), "RAYFN_HTTP_PORT": str(free_port())}
    printed = _text(_run("job_queue_web.ipynb", env, tmp_path))
    assert "right away: 202" in printed
    assert "later: 200 {'result': 'hello from the notebook'}" in printed


def test_gpu_and_scaling_on_declared_gpus(tmp_path: Path) -> None:
    # No RAYFN_HOME and no RAY_* (but the one below): the notebook starts (and stops) a
    # cluster of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RAYFN_HOME"))}
    env["PYTHONPATH"] = str(ROOT)
    # Its cluster inherits this: `rayfn cluster stop` then stops it at once instead of
    # draining the node for Ray's default 30 s, which rayfn's actors always wait out.
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    printed = _text(_run("gpu_and_scaling.ipynb", env, tmp_path))
    assert "'CUDA_VISIBLE_DEVICES': '0'" in printed
    assert "4 calls, none overlapping" in printed
    assert "succeeded on attempt 3" in printed
    assert "Stopped the Ray cluster" in printed
