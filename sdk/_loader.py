"""Loading a user's file for ``rayfn deploy`` and ``rayfn run``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from rayfn._app import App
from rayfn.exception import InvalidError
from rayfn.runtime.records import user_traceback


def import_file(path: str | Path) -> ModuleType:
    """Import a Python file as a module named after it.

    Raises:
        InvalidError: the file is missing, not Python, or has a syntax error.
    """
    file = Path(path)
    if not file.is_file():
        raise InvalidError(f"No such file: {path}")
    if file.suffix != ".py":
        raise InvalidError(f"{path} is not a Python file (.py).")
    file = file.resolve()
    module_name = file.stem
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) != str(file):
        module_name = f"rayfn_user_{module_name}"
    # Let the file import the modules beside it, as `python file.py` would.
    if str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise InvalidError(f"Cannot import {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise InvalidError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        del sys.modules[module_name]
        # The user's frames only: rayfn's, importlib's and the CLI's say nothing to them.
        failed = InvalidError(
            f"{path} failed to import: {type(exc).__name__}: {exc}. Fix the file, or "
            "add what it imports to this environment (and to the app's image)."
        )
        failed.add_note(user_traceback(exc, exc.__traceback__).rstrip())
        raise failed from None
    for value in vars(module).values():
        if isinstance(value, App) and not value.source:
            value.source = str(file)
    return module


def find_app(module: ModuleType, name: str | None = None) -> App:
    """The ``App`` a module defines; ``name`` picks one by variable name when there
    are several.

    Raises:
        InvalidError: no App, or several and no name.
    """
    apps = {var: value for var, value in vars(module).items() if isinstance(value, App)}
    where = getattr(module, "__file__", module.__name__)
    if name is not None:
        if name not in apps:
            raise InvalidError(f"{where} has no App named {name!r} (it has: {', '.join(apps)}).")
        return apps[name]
    if not apps:
        raise InvalidError(
            f'No rayfn.App in {where}: define one, e.g. `app = rayfn.App("my-app")`.'
        )
    if len(apps) > 1:
        raise InvalidError(
            f"{where} defines several apps ({', '.join(apps)}): pick one with FILE::VARIABLE."
        )
    return next(iter(apps.values()))
