"""Modal programs as Modal's docs run them (issue 17): each in tests/apps/modal_style/
imports ``rayfn as modal`` and runs through the CLI on a real cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import rayfn
from rayfn.exception import InvalidError, NotFoundError
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(300)


def run_program(cluster: Cluster, name: str) -> str:
    """Run ``tests/apps/modal_style/<name>.py`` as Modal's docs run programs; its output."""
    done = cluster.cli("run", f"tests/apps/modal_style/{name}.py", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def assert_lines(out: str, lines: list[str]) -> None:
    for line in lines:
        assert line in out, f"{line!r} missing from:\n{out}"


def test_the_async_surface_awaits_everything_a_program_awaits(cluster: Cluster) -> None:
    done = cluster.cli("run", "tests/apps/modal_style/async_surface.py", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "never awaited" not in done.stderr
    for line in [
        "remote: 9",
        "map: [0, 1, 4, 9, 16]",
        "starmap: [3, 7]",
        "gather: [0, 1, 4, 9]",
        "get: 49",
        "cls: 42",
        "loop ran during the calls: True",
        "loop ran during the map: True",
        "dict: 1 True 2",
        "dict keys: ['a', 'b']",
        "dict pop: 1 1",
        "queue: first ['second', 'third'] 0",
    ]:
        assert line in out, f"{line!r} missing from:\n{out}"


def test_map_hands_over_each_result_as_it_finishes(cluster: Cluster) -> None:
    done = cluster.cli("run", "tests/apps/modal_style/map_streaming.py", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = re.findall(r"(ordered|unordered) ([\d.]+) at ([\d.]+)", done.stdout)
    ordered = [(float(v), float(t)) for kind, v, t in seen if kind == "ordered"]
    unordered = [(float(v), float(t)) for kind, v, t in seen if kind == "unordered"]
    assert [v for v, _ in ordered] == [0.0, 0.1, 3.0]
    # The quick ones came while the 3 s call still ran, not with it.
    assert ordered[1][1] < ordered[2][1] - 1.5, done.stdout
    assert [v for v, _ in unordered] == [0.0, 3.0]
    assert unordered[0][1] < unordered[1][1] - 1.5, done.stdout


def test_concurrent_inputs_share_what_one_call_asks_for(cluster: Cluster) -> None:
    done = cluster.cli("run", "tests/apps/modal_style/concurrent_inputs.py", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "at once: 4" in done.stdout, done.stdout


def test_a_volume_shares_files_between_calls_classes_and_the_client(
    cluster: Cluster, tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("uploaded from the client")
    mount = tmp_path / "mounted" / "data"  # where the calls see the volume
    try:
        done = cluster.cli(
            "run",
            "tests/apps/modal_style/volumes.py",
            "--note",
            str(note),
            env={"VOLUME_MOUNT": str(mount)},
            timeout=240,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        for line in [
            "listing: ['from-call.txt', 'uploaded']",
            "read: written in a call",
            "client reads: written in a call",
            "entries: ['from-call.txt', 'uploaded', 'uploaded/note.txt']",
            "enter saw: uploaded from the client",
            "after remove: ['uploaded']",
        ]:
            assert line in done.stdout, f"{line!r} missing from:\n{done.stdout}"
        assert mount.is_symlink()  # the call's node is this machine
    finally:
        rayfn.Volume.delete("modal-style-volume")
    with pytest.raises(NotFoundError, match="No Volume named 'modal-style-volume'"):
        rayfn.Volume.from_name("modal-style-volume")


def test_volume_mistakes_are_clear(cluster: Cluster) -> None:
    app = rayfn.App("test-volume-mistakes")
    with rayfn.Volume.ephemeral() as vol:
        with pytest.raises(InvalidError, match="absolute path other than /"):
            app.function(volumes={"data": vol})
        with pytest.raises(InvalidError, match="one inside the other"):
            app.function(volumes={"/a": vol, "/a/b": vol})
        with pytest.raises(InvalidError, match=r"dict of paths to rayfn\.Volume"):
            app.function(volumes={"/a": "vol"})  # type: ignore[dict-item]
        with pytest.raises(FileNotFoundError, match=r"No file 'missing\.txt'"):
            b"".join(vol.read_file("missing.txt"))
        with pytest.raises(InvalidError, match="leads out of the volume"):
            vol.listdir("../..")


def test_a_file_is_imported_on_the_workers_and_its_top_level_built_there(
    cluster: Cluster,
) -> None:
    assert_lines(
        run_program(cluster, "worker_import"),
        [
            "where: [('built in this process', True), ('built locally', False), "
            "('env', 'in the image'), ('is_local', False), ('json', '[1]')]",
            "norm: 5",
            "caller: 26",
            "class: False 4",
            "local: True",
        ],
    )


def test_generators_stream_what_they_yield_as_they_yield_it(cluster: Cluster) -> None:
    out = run_program(cluster, "generators")
    arrived = [(int(v), float(t)) for v, t in re.findall(r"countdown (\d) at ([\d.]+)", out)]
    assert [v for v, _ in arrived] == [3, 2, 1], out
    # Each value came as it was yielded (1.5 s apart), not all at the end.
    assert arrived[1][1] - arrived[0][1] > 1.0, out
    assert arrived[2][1] - arrived[1][1] > 1.0, out
    assert_lines(
        out,
        [
            "async: ['tick 0', 'tick 1', 'tick 2']",
            "raised: ['before'] broke after 2",
            "stopped early: [0, 1, 2] CANCELLED",
            "class: ['a', 'b', 'c']",
            "refused: modal-style-generators.countdown is a generator function: it cannot be "
            "called with .remote(...). "
            "Use .remote_gen(...) instead.",
        ],
    )


def test_batched_functions_and_methods_get_lists_and_callers_single_values(
    cluster: Cluster,
) -> None:
    assert_lines(
        run_program(cluster, "batching"),
        [
            "map: [(1, 4), (4, 4), (3, 4), (8, 4)]",  # the four calls in one batch
            "alone: (9, 1)",  # one call: went once wait_ms passed
            "failed: ['a batch of 3 failed', 'a batch of 3 failed', 'a batch of 3 failed']",
            "class: [100, 101, 102, 103, 104]",
        ],
    )


def test_with_options_runs_the_same_code_with_other_resources_and_limits(
    cluster: Cluster,
) -> None:
    assert_lines(
        run_program(cluster, "options"),
        [
            "function: 0.5 1.0",
            "short timeout: timed out",
            "own timeout: rested",
            "class: 0.5 1.0",
        ],
    )
