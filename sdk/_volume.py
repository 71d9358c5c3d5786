"""``rayfn.Volume``: a named folder every call can mount, Modal's ``modal.Volume``.

    vol = rayfn.Volume.from_name("models", create_if_missing=True)

    @app.function(volumes={"/models": vol})
    def train():
        Path("/models/weights.bin").write_bytes(...)  # every later call sees it

The files live under the cluster's volumes root (runtime/volumes.py); from anywhere
else, ``listdir``, ``read_file``, ``batch_upload`` and ``remove_file`` go through the
control actor. A write is seen at once by every call: ``commit`` and ``reload`` are
there for Modal code and have nothing to do.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import ray

from rayfn import _connection
from rayfn._aio import Steps, aio_method, run_steps
from rayfn._checks import check_name
from rayfn.exception import InvalidError, NotFoundError
from rayfn.runtime import sources, volumes
from rayfn.runtime.clients import Reply
from rayfn.runtime.volumes import Entry

T = TypeVar("T")
# read_file hands a file over in pieces of this size, as Modal's does.
_CHUNK = 1024 * 1024

FileEntry = Entry  # Modal's name: .path, .type (FileEntryType), .mtime, .size; .is_dir


class Volume:
    """A named folder shared by every call that mounts it (``volumes={path: vol}``)."""

    def __init__(self, name: str) -> None:
        self.name = check_name("volume", name)

    @classmethod
    def from_name(
        cls,
        name: str,
        *,
        create_if_missing: bool = False,
        environment_name: str | None = None,
        version: int | None = None,
    ) -> Volume:
        """The volume named ``name`` (made now with ``create_if_missing``).

        Raises:
            NotFoundError: there is none, and ``create_if_missing`` is False.
        """
        volume = cls(name)
        if not _ask(_connection.control().volume(volume.name, create_if_missing)):
            raise NotFoundError(
                f"No Volume named {name!r}; make it with "
                f"rayfn.Volume.from_name({name!r}, create_if_missing=True)."
            )
        return volume

    @classmethod
    @contextlib.contextmanager
    def ephemeral(cls) -> Iterator[Volume]:
        """A volume for the block only: deleted, files and all, at its end."""
        volume = cls.from_name(f"ephemeral-{secrets.token_hex(6)}", create_if_missing=True)
        try:
            yield volume
        finally:
            cls.delete(volume.name)

    @staticmethod
    def delete(name: str) -> None:
        """Delete the volume and its files.

        Raises:
            NotFoundError: there is no such volume.
        """
        if not _ask(_connection.control().delete_volume(check_name("volume", name))):
            raise NotFoundError(f"No Volume named {name!r}.")

    @aio_method
    def commit(self) -> Steps[None]:
        """In a call, under an object store root: upload what this node's calls
        changed in the volume. Under a folder root (or outside a call) nothing to do:
        a write is seen by every call at once."""
        if sources.in_worker():
            yield _in_thread(volumes.commit, self.name)

    @aio_method
    def reload(self) -> Steps[None]:
        """In a call, under an object store root: download the volume's files again.
        Under a folder root (or outside a call) nothing to do: a call sees every
        write at once."""
        if sources.in_worker():
            yield _in_thread(volumes.reload, self.name)

    @aio_method
    def listdir(self, path: str = "/", recursive: bool = False) -> Steps[list[Entry]]:
        """The files and folders at ``path`` (all below it, with ``recursive``)."""
        return (yield from _asked(_connection.control().volume_listdir(self.name, path, recursive)))

    def read_file(self, path: str) -> Iterator[bytes]:
        """The contents of file ``path``, in pieces.

        Raises:
            FileNotFoundError: there is no such file.
        """
        data = _ask(_connection.control().volume_read(self.name, path))
        return (data[i : i + _CHUNK] for i in range(0, max(len(data), 1), _CHUNK))

    @aio_method
    def remove_file(self, path: str, recursive: bool = False) -> Steps[None]:
        """Remove file ``path`` (a folder with ``recursive``)."""
        yield from _asked(_connection.control().volume_remove(self.name, path, recursive))

    def batch_upload(self, force: bool = False) -> _Upload:
        """Files to upload together when the ``with`` block ends; an existing file is
        refused (``FileExistsError``) unless ``force``.

        Example:
            >>> with vol.batch_upload() as batch:
            ...     batch.put_file("local.txt", "/remote.txt")
            ...     batch.put_directory("data/", "/data")
        """
        return _Upload(self, force)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Volume, (self.name,))

    def __repr__(self) -> str:
        return f"Volume({self.name!r})"


def _in_thread(fn: Any, *args: Any) -> Future[None]:
    """``fn(*args)`` (file transfers) in a thread of its own, as a step to wait for."""
    future: Future[None] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="rayfn-volume", daemon=True).start()
    return future


class _Upload:
    def __init__(self, volume: Volume, force: bool) -> None:
        self._volume = volume
        self._force = force
        self._files: list[tuple[str, Path]] = []

    def put_file(self, local_file: str | Path, remote_path: str) -> None:
        path = Path(local_file)
        if not path.is_file():
            raise InvalidError(f"put_file: {local_file} is not a file.")
        self._files.append((remote_path, path))

    def put_directory(self, local_path: str | Path, remote_path: str) -> None:
        folder = Path(local_path)
        if not folder.is_dir():
            raise InvalidError(f"put_directory: {local_path} is not a directory.")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            self._files.append((f"{remote_path.rstrip('/')}/{relative}", path))

    def __enter__(self) -> _Upload:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if kind is None and self._files:
            files = [(remote, path.read_bytes()) for remote, path in self._files]
            control = _connection.control()
            _ask(control.volume_write(self._volume.name, files, self._force))


def _asked(reply: Reply[T]) -> Steps[T]:
    """The answer, with the error the control actor raised as itself (a missing file
    is ``FileNotFoundError``), not wrapped in Ray's."""
    try:
        answer: T = yield reply
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, FileNotFoundError | FileExistsError | IsADirectoryError):
            raise type(cause)(*cause.args) from None
        if isinstance(cause, ValueError):
            raise InvalidError(str(cause)) from None
        raise
    return answer


def _ask(reply: Reply[T]) -> T:
    return run_steps(_asked(reply))


def mounts_of(volumes: object) -> tuple[tuple[str, str], ...]:
    """``volumes={"/path": vol}`` of ``@app.function`` as ``(path, name)`` pairs.

    Raises:
        InvalidError: not a dict of absolute paths to Volumes, or a path inside another.
    """
    if volumes is None:
        return ()
    if not isinstance(volumes, dict) or not all(
        isinstance(p, str) and isinstance(v, Volume) for p, v in volumes.items()
    ):
        raise InvalidError('volumes must be a dict of paths to rayfn.Volume, e.g. {"/data": vol}.')
    paths = sorted(str(Path(p)) for p in volumes)
    for path in paths:
        if not path.startswith("/") or path == "/" or any(c in path for c in ",=\n"):
            raise InvalidError(
                f"A volume mounts at an absolute path other than / (without , = or line "
                f"breaks), got {path!r}."
            )
    for outer, inner in itertools.pairwise(paths):
        if inner.startswith(outer + "/"):
            raise InvalidError(f"Volume paths {outer} and {inner} are one inside the other.")
    return tuple(sorted((str(Path(p)), v.name) for p, v in volumes.items()))
