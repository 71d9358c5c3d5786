"""An image's files placed where it names them, in a worker process (pure: no Ray)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rayfn.runtime import image_files


def test_files_go_where_the_image_says_and_calls_run_in_its_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy"  # Ray's copy of the working_dir the client staged
    (copy / "0" / "data").mkdir(parents=True)
    (copy / "0" / "data" / "notes.txt").write_text("notes")
    (copy / "1").mkdir()
    (copy / "1" / "config.json").write_text("{}")
    elsewhere = tmp_path / "abs" / "data"
    workdir = tmp_path / "work"
    listed = [[str(elsewhere), "0/data"], ["conf/config.json", "1/config.json"]]
    monkeypatch.setenv(image_files.FILES_ENV, json.dumps(listed))
    monkeypatch.setenv(image_files.WORKDIR_ENV, str(workdir))
    monkeypatch.setattr(image_files, "_placed", False)
    monkeypatch.chdir(copy)
    image_files.place()
    assert (elsewhere / "notes.txt").read_text() == "notes"
    assert Path.cwd() == workdir
    assert Path("conf/config.json").read_text() == "{}"  # relative: under the workdir
    image_files.place()  # once per process: nothing more to do
    assert os.readlink(elsewhere) == str(copy / "0" / "data")


def test_a_path_the_node_has_already_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "f").write_text("x")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "own.txt").write_text("the node's own")
    monkeypatch.setenv(image_files.FILES_ENV, json.dumps([[str(taken), "0/f"]]))
    monkeypatch.delenv(image_files.WORKDIR_ENV, raising=False)
    monkeypatch.setattr(image_files, "_placed", False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="this node's own and not empty"):
        image_files.place()
