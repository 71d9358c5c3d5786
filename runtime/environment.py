"""Which of an image's pip requirements the cluster's own environment lacks: only those
go into a Ray ``runtime_env`` (a per-task virtualenv costs seconds to minutes to build,
so requirements already satisfied create none). Pure; run where the code will run."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement


def unsatisfied(requirements: Iterable[str]) -> list[str]:
    """The requirements (as given) that this Python environment does not satisfy,
    counting the packages their extras pull in one level down."""
    return [req for req in requirements if not _satisfied(req)]


def runtime_env_for(pip: Iterable[str]) -> dict[str, Any] | None:
    """The Ray ``runtime_env`` an image's pip requirements need here, or None."""
    missing = unsatisfied(pip)
    return {"pip": missing} if missing else None


def _satisfied(text: str) -> bool:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return False  # let pip report it, in the runtime env
    if not _installed(req):
        return False
    for extra in req.extras:
        for dep_text in importlib.metadata.requires(req.name) or []:
            dep = Requirement(dep_text)
            if dep.marker is None or not dep.marker.evaluate({"extra": extra}):
                continue
            if not _installed(dep):
                return False
    return True


def _installed(req: Requirement) -> bool:
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return not req.specifier or req.specifier.contains(version, prereleases=True)
