"""Volumes' folders and mounts (runtime/volumes.py), on this machine's filesystem: what
the control actor does for clients and a worker does for a call. No cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rayfn.runtime.volumes import FileEntryType, Folders, mount


def test_files_go_in_and_out_of_a_volume(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "root")
    folders.create("models")
    assert folders.names() == ["models"] and folders.exists("models")
    folders.write("models", [("/a/b.txt", b"one"), ("c.txt", b"two")], force=False)
    assert folders.read("models", "a/b.txt") == b"one"
    listed = folders.listdir("models", "/", recursive=True)
    assert [(e.path, e.is_dir, e.size) for e in listed] == [
        ("a", True, listed[0].size),
        ("a/b.txt", False, 3),
        ("c.txt", False, 3),
    ]
    assert [e.path for e in folders.listdir("models", "/", recursive=False)] == ["a", "c.txt"]
    kinds = [FileEntryType.DIRECTORY, FileEntryType.FILE, FileEntryType.FILE]
    assert [e.type for e in listed] == kinds
    with pytest.raises(FileExistsError, match="force=True"):
        folders.write("models", [("c.txt", b"again")], force=False)
    folders.write("models", [("c.txt", b"again")], force=True)
    assert folders.read("models", "/c.txt") == b"again"
    with pytest.raises(IsADirectoryError, match="recursive=True"):
        folders.remove("models", "a", recursive=False)
    folders.remove("models", "a", recursive=True)
    with pytest.raises(FileNotFoundError, match=r"No file 'a/b\.txt'"):
        folders.read("models", "a/b.txt")
    with pytest.raises(ValueError, match="leads out of the volume"):
        folders.read("models", "../models/c.txt")
    with pytest.raises(FileNotFoundError, match="No volume named 'other'"):
        folders.listdir("other", "/", recursive=False)
    assert folders.delete("models") and not folders.delete("models")


def test_a_mount_is_a_symlink_replaced_for_another_volume(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "root")
    folders.create("one")
    folders.create("two")
    folders.write("one", [("x.txt", b"1")], force=False)
    link = tmp_path / "mnt" / "data"
    mount(((str(link), "one"),), root=folders.root)
    assert (link / "x.txt").read_bytes() == b"1"
    mount(((str(link), "one"),), root=folders.root)  # again: nothing to do
    mount(((str(link), "two"),), root=folders.root)
    assert os.readlink(link) == str(folders.root / "two") and not (link / "x.txt").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "own.txt").write_text("the node's own")
    with pytest.raises(RuntimeError, match="this node's own and not empty"):
        mount(((str(busy), "one"),), root=folders.root)
    empty = tmp_path / "empty"
    empty.mkdir()
    mount(((str(empty), "one"),), root=folders.root)  # an empty folder gives way
    assert empty.is_symlink()
