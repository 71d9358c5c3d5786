"""Volumes in an object store: ``RAYFN_VOLUMES_ROOT`` an fsspec URL (``s3://bucket/x``,
``gs://bucket/x``, ``file:///shared/x``...), for a cluster whose nodes share no folder.

The control actor reads and writes the store for clients (``StoreFolders``, the same
operations as ``volumes.Folders``). A node keeps one working copy of each volume its
calls mount, downloaded on first use (``working_copy``): the mount path is a symlink
to it, as for a local root. The node's calls share that copy; ``Volume.commit()`` in a
call uploads what changed in it since it was downloaded or last committed, and
``Volume.reload()`` downloads the store's files again, as Modal's commit and reload do.
A volume is a folder in the store with a marker object in it (stores have no empty
folders).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec

from rayfn.runtime.constants import KV_VOLUMES_ROOT

MARKER = ".rayfn-volume"  # in each volume's folder of the store
MANIFEST = ".rayfn-manifest.json"  # in a working copy: what it held when last in sync
_HIDDEN = {MARKER, MANIFEST}


def is_store(root: str) -> bool:
    """Whether a volumes root names an object store (a URL) rather than a folder."""
    return "://" in root


class StoreFolders:
    """The volumes under an fsspec URL, for the control actor."""

    def __init__(self, url: str) -> None:
        self.root = url
        self._fs, self._base = fsspec.core.url_to_fs(url)
        self._fs.makedirs(self._base, exist_ok=True)

    def publish(self) -> None:
        from rayfn.runtime import kv

        kv.put(KV_VOLUMES_ROOT, self.root.encode())

    def exists(self, name: str) -> bool:
        return bool(self._fs.exists(f"{self._base}/{name}/{MARKER}"))

    def create(self, name: str) -> None:
        if not self.exists(name):
            _put(self._fs, f"{self._base}/{name}/{MARKER}", b"")

    def delete(self, name: str) -> bool:
        if not self.exists(name):
            return False
        self._fs.rm(f"{self._base}/{name}", recursive=True)
        return True

    def names(self) -> list[str]:
        found = self._fs.ls(self._base, detail=False)
        names = [PurePosixPath(p).name for p in found]
        return sorted(n for n in names if self.exists(n))

    def listdir(self, name: str, path: str, recursive: bool) -> list[Any]:
        from rayfn.runtime.volumes import Entry

        start = self._inside(name, path)
        base = f"{self._base}/{name}"
        if self._fs.isfile(start):
            return [_entry(Entry, base, self._fs.info(start))]
        if not self._fs.isdir(start):
            raise FileNotFoundError(f"No file or folder {path!r} in volume {name!r}.")
        if recursive:
            found = self._fs.find(start, withdirs=True, detail=True).values()
        else:
            found = self._fs.ls(start, detail=True)
        entries = [
            _entry(Entry, base, info)
            for info in found
            if PurePosixPath(info["name"]).name not in _HIDDEN
            and info["name"].rstrip("/") != start.rstrip("/")
        ]
        return sorted(entries, key=lambda e: e.path)

    def read(self, name: str, path: str) -> bytes:
        target = self._inside(name, path)
        if not self._fs.isfile(target):
            raise FileNotFoundError(f"No file {path!r} in volume {name!r}.")
        return bytes(self._fs.cat_file(target))

    def write(self, name: str, files: list[tuple[str, bytes]], force: bool) -> None:
        targets = [(self._inside(name, path), data) for path, data in files]
        if not force:
            taken = [t for t, _ in targets if self._fs.exists(t)]
            if taken:
                shown = taken[0][len(self._base) + len(name) + 2 :]
                raise FileExistsError(
                    f"{shown} is in volume {name!r} already; batch_upload(force=True) "
                    "replaces files."
                )
        for target, data in targets:
            _put(self._fs, target, data)  # an object store replaces it whole

    def remove(self, name: str, path: str, recursive: bool) -> None:
        target = self._inside(name, path)
        if self._fs.isdir(target):
            if not recursive:
                raise IsADirectoryError(f"{path!r} is a folder: remove_file(..., recursive=True).")
            self._fs.rm(target, recursive=True)
        elif self._fs.exists(target):
            self._fs.rm(target)
        else:
            raise FileNotFoundError(f"No file or folder {path!r} in volume {name!r}.")

    def _inside(self, name: str, path: str) -> str:
        if not self.exists(name):
            raise FileNotFoundError(f"No volume named {name!r}.")
        parts = PurePosixPath("/", path).parts[1:]
        if ".." in parts:
            raise ValueError(f"{path!r} leads out of the volume.")
        return "/".join([self._base, name, *parts]).rstrip("/")


def _put(fs: Any, path: str, data: bytes) -> None:
    """Write one object (a local folder store needs its parent folder made)."""
    fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
    fs.pipe_file(path, data)


def _entry(entry: Any, base: str, info: dict[str, Any]) -> Any:
    name = info["name"].rstrip("/")
    relative = name[len(base.rstrip("/")) + 1 :]
    mtime = info.get("mtime") or info.get("LastModified") or info.get("updated") or 0
    if not isinstance(mtime, int | float):
        mtime = mtime.timestamp() if hasattr(mtime, "timestamp") else 0.0
    return entry(
        relative, info.get("type") == "directory", float(mtime), int(info.get("size") or 0)
    )


# -- a node's working copies ---------------------------------------------------------

_COPIES = Path(tempfile.gettempdir()) / f"rayfn-volumes-{os.getuid()}"


def working_copy(url: str, name: str) -> Path:
    """This node's copy of volume ``name`` of the store at ``url``, downloaded the
    first time a call here mounts it."""
    local = _copy_path(url, name)
    with _node_lock(local):
        if not (local / MANIFEST).exists():
            _download(url, name, local)
    return local


def commit(url: str, name: str) -> None:
    """Upload what changed in this node's copy since it was last in sync: new and
    changed files, and the removal of files it no longer has."""
    local = _copy_path(url, name)
    if not (local / MANIFEST).exists():
        return  # never mounted here: nothing of it changed here
    fs, base = fsspec.core.url_to_fs(url)
    remote = f"{base}/{name}"
    with _node_lock(local):
        known = json.loads((local / MANIFEST).read_text())
        now = _stamps(local)
        for relative, stamp in now.items():
            if known.get(relative) != stamp:
                _put(fs, f"{remote}/{relative}", (local / relative).read_bytes())
        for relative in set(known) - set(now):
            with contextlib.suppress(FileNotFoundError):
                fs.rm(f"{remote}/{relative}")
        (local / MANIFEST).write_text(json.dumps(now))


def reload(url: str, name: str) -> None:
    """Download the store's files of the volume again (what this node changed and did
    not commit is replaced)."""
    local = _copy_path(url, name)
    if not (local / MANIFEST).exists():
        return  # never mounted here: the first mount downloads it
    with _node_lock(local):
        _download(url, name, local)


def _download(url: str, name: str, local: Path) -> None:
    fs, base = fsspec.core.url_to_fs(url)
    remote = f"{base}/{name}"
    if local.exists():
        for child in local.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    local.mkdir(parents=True, exist_ok=True)
    for path, info in fs.find(remote, withdirs=True, detail=True).items():
        relative = path.rstrip("/")[len(remote.rstrip("/")) + 1 :]
        if not relative or PurePosixPath(relative).name in _HIDDEN:
            continue
        target = local / relative
        if info.get("type") == "directory":
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(target))
    (local / MANIFEST).write_text(json.dumps(_stamps(local)))


def _stamps(local: Path) -> dict[str, list[int]]:
    """Each file of a copy (its path inside), with its size and change time."""
    stamps = {}
    for path in local.rglob("*"):
        if path.is_file() and path.name not in _HIDDEN:
            info = path.stat()
            stamps[path.relative_to(local).as_posix()] = [info.st_size, info.st_mtime_ns]
    return stamps


def _copy_path(url: str, name: str) -> Path:
    return _COPIES / hashlib.sha256(url.encode()).hexdigest()[:16] / name


@contextlib.contextmanager
def _node_lock(local: Path) -> Iterator[None]:
    """One process of this node at a time syncs a copy."""
    local.parent.mkdir(parents=True, exist_ok=True)
    with open(local.parent / f".{local.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
