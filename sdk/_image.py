"""``Image``: the environment a function runs in, as a Ray ``runtime_env`` for the
app's tasks, containers and replicas: ``pip_install`` -> ``pip`` (only requirements
the cluster's environment lacks), ``env`` -> ``env_vars``, ``add_local_python_source``
-> ``py_modules`` and ``add_local_dir`` -> ``working_dir`` (both uploaded to the
cluster's GCS from the deploying machine). The base image and Python version are
recorded only: a Ray cluster runs one environment."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rayfn.exception import InvalidError
from rayfn.runtime import _ray_compat as ray_compat


@dataclass(frozen=True)
class Image:
    """An immutable description of a container image, Modal style.

    Example:
        >>> image = rayfn.Image.debian_slim().pip_install("fastapi[standard]")
    """

    base: str = "debian_slim"
    python_version: str | None = None
    pip_packages: tuple[str, ...] = field(default=())
    env_vars: tuple[tuple[str, str], ...] = field(default=())
    python_sources: tuple[str, ...] = field(default=())  # module names
    local_dir: tuple[str, str] | None = None  # (local path, remote path)

    @classmethod
    def debian_slim(cls, python_version: str | None = None) -> Image:
        return cls(base="debian_slim", python_version=python_version)

    def pip_install(self, *packages: str | list[str]) -> Image:
        """A new image with these pip requirements added."""
        flat: list[str] = []
        for item in packages:
            flat.extend([item] if isinstance(item, str) else item)
        return replace(self, pip_packages=self.pip_packages + tuple(flat))

    def env(self, vars: dict[str, str]) -> Image:  # Modal's name
        """A new image with these environment variables set for every call."""
        if not isinstance(vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in vars.items()
        ):
            raise InvalidError("Image.env takes a dict of strings to strings.")
        return replace(self, env_vars=self.env_vars + tuple(vars.items()))

    def add_local_python_source(self, *module_names: str, copy: bool = False) -> Image:
        """A new image that ships these local modules (or packages) to the cluster."""
        for name in module_names:
            if not isinstance(name, str) or importlib.util.find_spec(name) is None:
                raise InvalidError(f"No local module {name!r} to add (is it importable here?).")
        return replace(self, python_sources=self.python_sources + module_names)

    def add_local_dir(self, local_path: str | Path, remote_path: str, copy: bool = False) -> Image:
        """A new image whose calls run in a copy of ``local_path``: its files are in the
        call's working directory (``remote_path`` is recorded; Ray has one per task)."""
        path = Path(local_path)
        if not path.is_dir():
            raise InvalidError(f"add_local_dir: {local_path} is not a directory.")
        if self.local_dir is not None:
            raise InvalidError("add_local_dir can be used once per image on rayfn.")
        return replace(self, local_dir=(str(path.resolve()), remote_path))

    def runtime_env(self) -> dict[str, Any]:
        """The part of the runtime env made on the deploying machine: env vars, and
        local code and files uploaded to the cluster (the pip part is decided in the
        cluster, which knows what it has)."""
        env: dict[str, Any] = {}
        if self.python_sources or self.local_dir is not None:
            from rayfn import _connection

            _connection.connect()  # uploads go to the cluster's GCS
        if self.env_vars:
            env["env_vars"] = dict(self.env_vars)
        if self.python_sources:
            paths = [_module_path(name) for name in self.python_sources]
            env = ray_compat.upload_py_modules({**env, "py_modules": paths})
        if self.local_dir is not None:
            env = ray_compat.upload_working_dir({**env, "working_dir": self.local_dir[0]})
        return env


def _module_path(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise InvalidError(f"No local module {name!r} to add.")
    origin = Path(spec.origin)
    # A package ships as its folder, a module as its file.
    return str(origin.parent if origin.name == "__init__.py" else origin)
