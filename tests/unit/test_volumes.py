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
    mount(((str(link), "one"),), root=str(folders.root))
    assert (link / "x.txt").read_bytes() == b"1"
    mount(((str(link), "one"),), root=str(folders.root))  # again: nothing to do
    mount(((str(link), "two"),), root=str(folders.root))
    assert os.readlink(link) == str(folders.root / "two") and not (link / "x.txt").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "own.txt").write_text("the node's own")
    with pytest.raises(RuntimeError, match="this node's own and not empty"):
        mount(((str(busy), "one"),), root=str(folders.root))
    empty = tmp_path / "empty"
    empty.mkdir()
    mount(((str(empty), "one"),), root=str(folders.root))  # an empty folder gives way
    assert empty.is_symlink()


def test_an_object_store_root_keeps_volumes_as_folders_do(tmp_path: Path) -> None:
    from rayfn.runtime.volume_store import StoreFolders

    store = StoreFolders(f"file://{tmp_path / 'bucket'}")
    store.create("one")
    assert store.exists("one") and store.names() == ["one"]
    store.write("one", [("a.txt", b"A"), ("sub/b.txt", b"B")], force=False)
    with pytest.raises(FileExistsError, match=r"a\.txt is in volume 'one' already"):
        store.write("one", [("a.txt", b"again")], force=False)
    assert [e.path for e in store.listdir("one", "/", recursive=True)] == [
        "a.txt",
        "sub",
        "sub/b.txt",
    ]
    assert [(e.path, e.is_dir) for e in store.listdir("one", "/", recursive=False)] == [
        ("a.txt", False),
        ("sub", True),
    ]
    assert store.read("one", "sub/b.txt") == b"B"
    with pytest.raises(IsADirectoryError):
        store.remove("one", "sub", recursive=False)
    store.remove("one", "sub", recursive=True)
    with pytest.raises(ValueError, match="leads out"):
        store.read("one", "../x")
    assert store.delete("one") and not store.exists("one") and not store.delete("one")


def test_a_nodes_copy_of_a_stored_volume_commits_and_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rayfn.runtime import volume_store

    monkeypatch.setattr(volume_store, "_COPIES", tmp_path / "copies")
    url = f"file://{tmp_path / 'bucket'}"
    store = volume_store.StoreFolders(url)
    store.create("data")
    store.write("data", [("kept.txt", b"kept"), ("gone.txt", b"gone")], force=False)
    link = tmp_path / "mnt" / "data"
    mount(((str(link), "data"),), root=url)  # a call mounts it: downloaded here
    assert (link / "kept.txt").read_text() == "kept"
    (link / "new.txt").write_text("made in a call")
    (link / "gone.txt").unlink()
    assert [e.path for e in store.listdir("data", "/", False)] == ["gone.txt", "kept.txt"]
    volume_store.commit(url, "data")  # Volume.commit() in the call
    assert [e.path for e in store.listdir("data", "/", False)] == ["kept.txt", "new.txt"]
    store.write("data", [("kept.txt", b"changed elsewhere")], force=True)
    assert (link / "kept.txt").read_text() == "kept"  # this node's copy, until...
    volume_store.reload(url, "data")  # ...Volume.reload()
    assert (link / "kept.txt").read_text() == "changed elsewhere"
