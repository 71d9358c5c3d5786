"""Code imported on the workers from the user's files, as Modal does.

A function deployed from a file travels as a ``ModuleSource``: that file and the user's
modules beside it, with the dotted path to the function (or class) in its module. A
worker writes the files once, under a folder named by their digest, and imports the
module there, so what the module builds at its top (a ``FastAPI()``, a client, the
imports of a ``with image.imports():`` block) is built on the worker with the worker's
libraries. What has no file (a notebook cell, a script's ``__main__``) is pickled by
value instead.

Several apps may ship a module of the same name to one worker process; each import
gets the names to itself, and a call puts its own modules back in ``sys.modules``
before its arguments are unpickled (an argument of a class from the user's module is
pickled by reference to it).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib
import importlib.machinery
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from rayfn.runtime.constants import CODE_ATTRIBUTE


class ModuleSource(NamedTuple):
    """Where a deployed function's code is: ``attribute`` of ``module``, imported from
    ``files`` (paths relative to the folder the module's top package sits in)."""

    module: str
    attribute: str
    files: tuple[tuple[str, bytes], ...]
    deployment: str  # the deployment key the module's App is, on the worker
    origin: str = ""  # the folder they came from, which tracebacks name

    def digest(self) -> str:
        hashed = hashlib.sha256()
        for path, content in sorted(self.files):
            hashed.update(path.encode() + b"\0" + hashlib.sha256(content).digest())
        return hashed.hexdigest()[:24]


class Loaded(NamedTuple):
    code: Any
    modules: dict[str, ModuleType]  # the user's modules of this import, by name


_BASE = Path(tempfile.gettempdir()) / f"rayfn-code-{os.getuid()}"
_lock = threading.Lock()
# (files' digest, deployment) -> the modules imported for it: a module is imported once
# per process for all the functions of a deployment, as once per Modal container.
_imported: dict[tuple[str, str], dict[str, ModuleType]] = {}
_importing: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rayfn_importing_deployment", default=None
)
_in_worker = False


def importing_deployment() -> str | None:
    """The deployment whose module is being imported on this worker, if one is: an
    ``App`` built at that module's top is that deployment (so a call to another of its
    functions goes to the same run)."""
    return _importing.get()


def in_worker() -> bool:
    """Whether this process runs deployed code (Modal's ``not is_local()``)."""
    return _in_worker


def enter_worker() -> None:
    """Mark this process as one that runs deployed code (before it loads any)."""
    global _in_worker
    _in_worker = True


def load(source: ModuleSource) -> Loaded:
    """Import ``source`` on this worker and find its code.

    Raises:
        ImportError, AttributeError, or whatever the module raises at import: the
        call fails with it, as it would under Modal.
    """
    enter_worker()
    imported = _imported.get((source.digest(), source.deployment))
    if imported is None:
        imported = _imported[(source.digest(), source.deployment)] = _import(source)
    code: Any = imported[source.module]
    for part in source.attribute.split("."):
        code = getattr(code, part)
    return Loaded(getattr(code, CODE_ATTRIBUTE, code), imported)


def _import(source: ModuleSource) -> dict[str, ModuleType]:
    """Import the module of ``source`` afresh; the user's modules it imported, by name."""
    folder = _materialize(source)
    names = {_module_name(path) for path, _ in source.files}
    with _lock, _own_names(names, folder.parent), _deployment(source.deployment):
        if str(folder) not in sys.path:
            # Compiled under the paths they had where they were deployed from, so a
            # traceback names the user's own file, not this copy.
            finder = importlib.machinery.FileFinder(
                str(folder), (_loader_for(folder, source.origin), [".py"])
            )
            sys.path_importer_cache[str(folder)] = finder
            sys.path.insert(0, str(folder))
        module = importlib.import_module(source.module)
        modules = {
            name: found
            for name, found in sys.modules.items()
            if name in names and _is_under(found, folder)
        }
    modules[source.module] = module
    return modules


def activate(modules: dict[str, ModuleType]) -> None:
    """Make ``modules`` the ones their names import (before a call's arguments are
    unpickled: they may refer to the user's classes by module name)."""
    for name, module in modules.items():
        if sys.modules.get(name) is not module:
            sys.modules[name] = module


def _loader_for(folder: Path, origin: str) -> type[importlib.machinery.SourceFileLoader]:
    class Loader(importlib.machinery.SourceFileLoader):
        def source_to_code(  # type: ignore[override]  # typeshed: a staticmethod
            self, data: Any, path: Any, *, _optimize: int = -1
        ) -> Any:
            named = Path(path)
            if origin and named.is_relative_to(folder):
                named = Path(origin) / named.relative_to(folder)
            return compile(data, str(named), "exec", dont_inherit=True, optimize=_optimize)

    return Loader


def _materialize(source: ModuleSource) -> Path:
    """The files, written once per node under a folder named by their digest."""
    base = _BASE
    folder = base / source.digest()
    if folder.is_dir():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=base, prefix=".staging-"))
    for path, content in source.files:
        target = staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    try:
        staging.rename(folder)  # atomic: another worker sees all of it or none
    except OSError:  # another worker of this node wrote it first
        with contextlib.suppress(OSError):
            _remove(staging)
    return folder


def _remove(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()


def _module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_under(module: ModuleType, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).is_relative_to(folder)


@contextlib.contextmanager
def _own_names(names: set[str], base: Path) -> Iterator[None]:
    """Import with ``names`` free, so another app's module of the same name (shipped
    under ``base``) is not taken for this one's. A library of that name already
    imported stays: the user's module cannot shadow it, as under ``python file.py``."""
    for name in names:
        found = sys.modules.get(name)
        if found is not None and _is_under(found, base):
            del sys.modules[name]
    importlib.invalidate_caches()
    yield


@contextlib.contextmanager
def _deployment(key: str) -> Iterator[None]:
    token = _importing.set(key)
    try:
        yield
    finally:
        _importing.reset(token)
