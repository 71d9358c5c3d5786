"""An image on this cluster: which of its pip requirements the cluster's own environment
lacks (only those go into a Ray ``runtime_env``: a per-task virtualenv costs seconds to
minutes to build, so requirements already satisfied create none), and what of it the
cluster cannot do at all (``problems``). Run where the code will run: the control actor."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from rayfn.runtime.records import ImageSpec


def unsatisfied(requirements: Iterable[str]) -> list[str]:
    """The requirements (as given) that this Python environment does not satisfy,
    counting the packages their extras pull in one level down."""
    return [req for req in requirements if not _satisfied(req)]


def runtime_env_for(pip: Iterable[str], uv_pip: Iterable[str] = ()) -> dict[str, Any] | None:
    """The Ray ``runtime_env`` an image's pip requirements need here, or None."""
    env: dict[str, Any] = {}
    if missing := unsatisfied(pip):
        env["pip"] = missing
    if missing := unsatisfied(uv_pip):
        env["uv"] = missing
    return env or None


def runtime_env_of(image: ImageSpec) -> dict[str, Any] | None:
    """The Ray ``runtime_env`` of ``image`` on this cluster (see ``problems`` first)."""
    env = {**(runtime_env_for(image.pip, image.uv_pip) or {}), **image.runtime_env}
    if image.registry_image is not None:
        env["image_uri"] = image.registry_image
    return env or None


def problems(image: ImageSpec, label: str) -> list[str]:
    """What this cluster cannot do of ``image`` (whose user is ``label``), one sentence
    each: a Ray cluster runs its nodes' own system and Python, so an image's base and
    system packages must be there already (or the image must run as a container)."""
    found = []
    wanted = image.python_version
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if wanted is not None and image.registry_image is None and wanted != here:
        found.append(
            f"{label} asks for Python {wanted}, but the cluster runs Python {here}: use "
            f"python_version={here!r} (or none), or a cluster of Python {wanted}."
        )
    missing = [name for name in image.apt if not _system_package(name)]
    if missing:
        found.append(
            f"{label} needs the system packages {', '.join(missing)}, which the cluster's "
            "nodes lack, and rayfn cannot install them on a Ray cluster: add them to the "
            "nodes (cluster.yaml setup_commands, `apt-get install`) and deploy again."
        )
    if image.registry_image is not None and shutil.which("podman") is None:
        found.append(
            f"{label} runs in the container image {image.registry_image!r}, but the "
            "cluster cannot run containers (Ray's image_uri needs podman on every node): "
            "install podman on the nodes, or use rayfn.Image.debian_slim() with "
            "pip_install(...) to run in the cluster's own environment."
        )
    return found


def _system_package(name: str) -> bool:
    """Whether Debian package ``name`` (or, without dpkg, a command of that name) is
    installed on this node."""
    if shutil.which("dpkg-query") is None:
        return shutil.which(name) is not None
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False
    )
    return done.returncode == 0 and done.stdout.strip().endswith("installed")


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
