"""Pickling of call arguments (on the client, so a bad argument fails before anything
is submitted) and of users' code: a function defined in a file travels as that file and
the user's modules beside it, imported on the workers (``runtime/sources.py``); one with
no file to import (a notebook cell, a script's ``__main__``, a function made inside
another) is pickled by value. Always Ray's bundled cloudpickle: registering modules
with the pip ``cloudpickle`` does nothing for Ray."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import ray

from rayfn.exception import SerializationError
from rayfn.runtime.constants import CODE_ATTRIBUTE
from rayfn.runtime.sources import ModuleSource


def dumps_args(function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Pickle a call's arguments.

    Raises:
        SerializationError: an argument cannot be pickled; nothing was submitted.
    """
    try:
        return ray.cloudpickle.dumps((args, kwargs))
    except Exception as exc:
        raise SerializationError(
            f"Cannot send the arguments of {function}: {type(exc).__name__}: {exc}. "
            "Arguments must be picklable (plain data, not locks, sockets or open files)."
        ) from exc


def dumps_code(code: Any, deployment: str) -> bytes:
    """A deployed function's (or class's) code: its module's source when the workers can
    import it from there, else the code pickled by value."""
    source = module_source(code, deployment)
    if source is not None:
        return ray.cloudpickle.dumps(source)
    return dumps_function(code)


def module_source(code: Any, deployment: str) -> ModuleSource | None:
    """``code`` as its file and the user's modules beside it, when it is found at its
    own name in a top-level module of the user's (not a package's, not ``__main__``)."""
    module = sys.modules.get(getattr(code, "__module__", ""))
    file = getattr(module, "__file__", None)
    if module is None or file is None or "." in module.__name__ or not _is_users(file):
        return None
    if module.__name__ == "__main__":  # `python script.py`, `-m`: pickled by value
        return None
    found: Any = module
    for part in code.__qualname__.split("."):
        found = getattr(found, part, None)
    if getattr(found, CODE_ATTRIBUTE, found) is not code:
        return None  # made inside a function, or renamed: not there to import
    folder = Path(file).resolve().parent
    # Under its module's name: the CLI may have imported the file under another.
    files = {f"{module.__name__}.py": Path(file).read_bytes()}
    for name, other in list(sys.modules.items()):
        path = _file_for(name, other, folder)
        if path is not None:
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return ModuleSource(
        module.__name__, code.__qualname__, tuple(files.items()), deployment, str(folder)
    )


def _file_for(name: str, module: ModuleType, folder: Path) -> Path | None:
    """The file of a user's module importable from ``folder`` by ``name``, if it is one."""
    file = getattr(module, "__file__", None)
    if not file or name == "__main__" or not _is_users(file):
        return None
    path = Path(file).resolve()
    if path.suffix != ".py" or not path.is_relative_to(folder):
        return None
    expected = folder.joinpath(*name.split("."))
    return path if path in (expected.with_suffix(".py"), expected / "__init__.py") else None


def _is_users(file: str) -> bool:
    parts = Path(file).parts
    return "site-packages" not in parts and "dist-packages" not in parts and file != "<string>"


def dumps_function(fn: Callable[..., Any]) -> bytes:
    """Pickle a user's function with the code of its own modules, by value."""
    with _by_value(_user_modules(fn)):
        try:
            return ray.cloudpickle.dumps(fn)
        except Exception as exc:
            raise SerializationError(
                f"Cannot pickle function {fn.__qualname__}: {type(exc).__name__}: {exc}"
            ) from exc


def _user_modules(fn: Callable[..., Any]) -> list[ModuleType]:
    """The module defining ``fn`` and the modules beside it in the same folder: the
    user's code, which workers cannot import. Installed packages stay by reference."""
    home = sys.modules.get(fn.__module__)
    home_file = getattr(home, "__file__", None)
    if home is None or home.__name__ == "__main__" or home_file is None:
        return []  # __main__ and notebook cells are pickled by value anyway
    if "site-packages" in home_file or home.__name__.split(".")[0] == "rayfn":
        return []
    folder = Path(home_file).resolve().parent
    modules = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and module.__name__ != "__main__" and Path(path).resolve().parent == folder:
            modules.append(module)
    return modules


@contextlib.contextmanager
def _by_value(modules: list[ModuleType]) -> Iterator[None]:
    registered = []
    for module in modules:
        with contextlib.suppress(ValueError):  # already registered
            ray.cloudpickle.register_pickle_by_value(module)
            registered.append(module)
    try:
        yield
    finally:
        for module in registered:
            ray.cloudpickle.unregister_pickle_by_value(module)
