"""Volumes: named folders under one root every node of the cluster sees, mounted into
calls at the path the function names (``volumes={"/data": vol}``), as Modal shows them.

The root is ``RAYFN_VOLUMES_ROOT`` where the control actor runs (default
``$RAYFN_HOME/volumes``, on the head node): on one machine a local folder, on several
nodes a folder they share (NFS and the like), or an object store's URL (``s3://...``:
``runtime/volume_store.py``). The control actor makes, lists, reads, writes and
deletes volumes' files for clients anywhere (``Folders``); it writes the root to the
GCS, where a worker reads it to mount a volume: a symlink from the mount path to the
volume's folder (or, for a store, the node's working copy of it), on the worker's
node. Under a folder a change is seen at once by every call, and ``commit`` and
``reload`` have nothing to do; under a store they upload and download.
"""

from __future__ import annotations

import enum
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rayfn.runtime import kv, volume_store
from rayfn.runtime.constants import KV_VOLUMES_ROOT
from rayfn.runtime.links import link

# Read from the GCS once per worker process: a folder, or an object store's URL.
_root: str | None = None


class FileEntryType(enum.IntEnum):
    """Modal's kinds of volume entries."""

    FILE = 1
    DIRECTORY = 2


@dataclass(frozen=True)
class Entry:
    """A file or folder of a volume, as ``listdir`` answers (Modal's ``FileEntry``)."""

    path: str  # relative to the volume's root, "/"-separated
    is_dir: bool
    mtime: float
    size: int

    @property
    def type(self) -> FileEntryType:
        return FileEntryType.DIRECTORY if self.is_dir else FileEntryType.FILE


def configured_root() -> str:
    """Where this process (the control actor) keeps volumes: a folder, or a URL."""
    explicit = os.environ.get("RAYFN_VOLUMES_ROOT")
    if explicit:
        return explicit if volume_store.is_store(explicit) else str(Path(explicit).expanduser())
    return str(Path(os.environ.get("RAYFN_HOME", "~/.rayfn")).expanduser() / "volumes")


def folders_at(root: str) -> Folders | volume_store.StoreFolders:
    """The volumes under ``root``, as the control actor serves them."""
    return volume_store.StoreFolders(root) if volume_store.is_store(root) else Folders(Path(root))


class Folders:
    """The volumes under ``root``, for the control actor."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def publish(self) -> None:
        """Tell the workers where the volumes are (the GCS)."""
        kv.put(KV_VOLUMES_ROOT, str(self.root).encode())

    def exists(self, name: str) -> bool:
        return (self.root / name).is_dir()

    def create(self, name: str) -> None:
        (self.root / name).mkdir(exist_ok=True)

    def delete(self, name: str) -> bool:
        folder = self.root / name
        if not folder.is_dir():
            return False
        shutil.rmtree(folder)
        return True

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def listdir(self, name: str, path: str, recursive: bool) -> list[Entry]:
        base = self.root / name
        start = self._inside(name, path)
        if start.is_file():
            return [_entry(base, start)]
        if not start.is_dir():
            raise FileNotFoundError(f"No file or folder {path!r} in volume {name!r}.")
        found = start.rglob("*") if recursive else start.iterdir()
        return sorted((_entry(base, p) for p in found), key=lambda e: e.path)

    def read(self, name: str, path: str) -> bytes:
        target = self._inside(name, path)
        if not target.is_file():
            raise FileNotFoundError(f"No file {path!r} in volume {name!r}.")
        return target.read_bytes()

    def write(self, name: str, files: list[tuple[str, bytes]], force: bool) -> None:
        """Write each ``(path, contents)``; an existing file only with ``force``."""
        targets = [(self._inside(name, path), data) for path, data in files]
        if not force:
            taken = [str(t.relative_to(self.root / name)) for t, _ in targets if t.exists()]
            if taken:
                raise FileExistsError(
                    f"{taken[0]} is in volume {name!r} already; batch_upload(force=True) "
                    "replaces files."
                )
        for target, data in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, target)  # a reader sees the old file or the new one

    def remove(self, name: str, path: str, recursive: bool) -> None:
        target = self._inside(name, path)
        if target.is_dir():
            if not recursive:
                raise IsADirectoryError(f"{path!r} is a folder: remove_file(..., recursive=True).")
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            raise FileNotFoundError(f"No file or folder {path!r} in volume {name!r}.")

    def _inside(self, name: str, path: str) -> Path:
        """``path`` of volume ``name``, refusing one that leads out of it."""
        base = (self.root / name).resolve()
        if not base.is_dir():
            raise FileNotFoundError(f"No volume named {name!r}.")
        parts = PurePosixPath("/", path).parts[1:]
        if ".." in parts:
            raise ValueError(f"{path!r} leads out of the volume.")
        return base.joinpath(*parts)


def _entry(base: Path, path: Path) -> Entry:
    info = path.stat()
    relative = path.relative_to(base).as_posix()
    return Entry(relative, stat.S_ISDIR(info.st_mode), info.st_mtime, info.st_size)


def mount(mounts: tuple[tuple[str, str], ...], root: str | None = None) -> None:
    """Make each ``(mount path, volume name)`` of a call show its volume's folder, on
    this node: a symlink, replaced if it showed another volume (one volume per mount
    path and node at a time).

    Raises:
        RuntimeError: the cluster has no volumes root yet, or the mount path is a
            folder or file of this node's own that is not empty (``links.link``).
    """
    if not mounts:
        return
    root = root or _volumes_root()
    for mount_path, name in mounts:
        if volume_store.is_store(root):
            target = volume_store.working_copy(root, name)
        else:
            target = Path(root) / name
        link(Path(mount_path), target, f"volume {name!r}")


def commit(name: str) -> None:
    """``Volume.commit()`` in a call: under an object store, upload this node's
    changes to the volume; under a folder, nothing to do."""
    root = _volumes_root()
    if volume_store.is_store(root):
        volume_store.commit(root, name)


def reload(name: str) -> None:
    """``Volume.reload()`` in a call: under an object store, download the volume
    again; under a folder, nothing to do."""
    root = _volumes_root()
    if volume_store.is_store(root):
        volume_store.reload(root, name)


def _volumes_root() -> str:
    global _root
    if _root is None:
        found = kv.get(KV_VOLUMES_ROOT)
        if found is None:
            raise RuntimeError("This cluster has no volumes yet (rayfn.Volume.from_name).")
        _root = found.decode()
    return _root
