"""A path on this node made to show a folder or file elsewhere on it (a symlink), as a
call needs it: a volume at its mount path, an image's files at the paths it names."""

from __future__ import annotations

import os
from pathlib import Path


def link(path: Path, target: Path, what: str) -> None:
    """Make ``path`` a symlink to ``target``: kept if it is one already, replaced if it
    showed something else (atomically: a call never sees no link at all); an empty
    folder there is replaced too.

    Raises:
        RuntimeError: ``path`` is this node's own and not empty, or this node's user
            may not write there.
    """
    if path.is_symlink():
        if os.readlink(path) == str(target):
            return
    elif path.is_dir() and not any(path.iterdir()):
        path.rmdir()
    elif path.exists():
        raise RuntimeError(
            f"Cannot put {what} at {path}: that path is this node's own and not empty. "
            "Use another path."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.rayfn-{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target, target_is_directory=target.is_dir())
        os.replace(temporary, path)
    except PermissionError as exc:
        raise RuntimeError(
            f"Cannot put {what} at {path} on this node: {exc.strerror}. Use a path the "
            "cluster's user may write (or a relative one)."
        ) from None
