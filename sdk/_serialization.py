"""Pickling of call arguments (on the client, so a bad argument fails before anything
is submitted) and of users' functions (by value, so a deployed file needs no shared
filesystem). Always Ray's bundled cloudpickle: registering modules with the pip
``cloudpickle`` does nothing for Ray."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import ray

from rayfn.exception import SerializationError


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
