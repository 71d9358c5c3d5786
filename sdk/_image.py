"""``Image``: the environment a function runs in, Modal style, as a Ray ``runtime_env``
for its tasks, containers and replicas. An image goes on the ``App`` (every function's)
or on one ``@app.function`` / ``@app.cls`` (its own).

A Ray cluster runs its nodes' own system and Python; what an image adds maps so:

- ``pip_install`` / ``uv_pip_install``: Ray's ``pip`` / ``uv`` runtime env, for the
  requirements the cluster's environment lacks (decided on the cluster at deploy);
- ``env``: ``env_vars``; ``add_local_python_source``: ``py_modules``;
  ``add_local_dir``/``add_local_file``: copied into one folder shipped as the
  ``working_dir``, each linked at its ``remote_path`` on the node before the first call
  (``runtime/image_files.py``); ``workdir``: the calls' working directory;
- ``debian_slim(python_version=)``, ``micromamba(python_version=)``: the cluster's own
  system; a Python version other than the cluster's fails the deploy;
- ``apt_install``: the packages must be on the nodes already (checked at deploy);
- ``from_registry(tag)``: the function runs in that container (Ray's ``image_uri``, which
  needs podman on the nodes; checked at deploy).

What has no Ray counterpart raises ``NotSupportedError`` when called, saying what to do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rayfn.exception import InvalidError, NotSupportedError
from rayfn.runtime import _ray_compat as ray_compat
from rayfn.runtime import image_files, sources
from rayfn.runtime.records import ImageSpec


@dataclass(frozen=True)
class Image:
    """An immutable description of the environment a function runs in, Modal style.

    Example:
        >>> image = rayfn.Image.debian_slim().pip_install("fastapi[standard]")
        >>> @app.function(image=image)
        ... def handler(): ...
    """

    base: str = "debian_slim"
    python_version: str | None = None
    registry_image: str | None = None  # from_registry's tag
    pip_packages: tuple[str, ...] = field(default=())
    uv_packages: tuple[str, ...] = field(default=())
    apt_packages: tuple[str, ...] = field(default=())
    env_vars: tuple[tuple[str, str], ...] = field(default=())
    python_sources: tuple[str, ...] = field(default=())  # module names
    # add_local_dir/add_local_file: (local path, remote path, glob patterns to leave out)
    local_files: tuple[tuple[str, str, tuple[str, ...]], ...] = field(default=())
    work_dir: str | None = None

    # -- bases ----------------------------------------------------------------------------

    @classmethod
    def debian_slim(cls, python_version: str | None = None, force_build: bool = False) -> Image:
        """The cluster's own system and Python (``python_version`` must be the
        cluster's: checked at deploy)."""
        return cls(base="debian_slim", python_version=_python_version(python_version))

    @classmethod
    def micromamba(cls, python_version: str | None = None, force_build: bool = False) -> Image:
        """As ``debian_slim``: the cluster's Python, with pip packages on top."""
        return cls(base="micromamba", python_version=_python_version(python_version))

    @classmethod
    def from_registry(
        cls,
        tag: str,
        *,
        add_python: str | None = None,
        setup_dockerfile_commands: list[str] | None = None,
        force_build: bool = False,
        secret: Any = None,
    ) -> Image:
        """Run in the container image ``tag`` (Ray's ``image_uri``: the nodes need
        podman, and the image needs Python and Ray; checked at deploy)."""
        if not isinstance(tag, str) or not tag:
            raise InvalidError(f"from_registry takes an image tag, got {tag!r}.")
        if setup_dockerfile_commands:
            raise NotSupportedError(
                "from_registry(setup_dockerfile_commands=...) is not supported by rayfn: it "
                "builds no images; build one with those commands and name it here."
            )
        return cls(base="registry", registry_image=tag, python_version=add_python)

    # -- what goes on top -----------------------------------------------------------------

    def pip_install(self, *packages: str | list[str], **options: Any) -> Image:
        """A new image with these pip requirements added."""
        return replace(self, pip_packages=self.pip_packages + _requirements(packages, options))

    def uv_pip_install(self, *packages: str | list[str], **options: Any) -> Image:
        """A new image with these requirements added, installed with uv."""
        return replace(self, uv_packages=self.uv_packages + _requirements(packages, options))

    def pip_install_from_requirements(self, path: str | Path, **options: Any) -> Image:
        """A new image with the requirements of a ``requirements.txt`` added."""
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise InvalidError(
                f"pip_install_from_requirements: cannot read {path}: {exc}"
            ) from None
        wanted = [line.split("#", 1)[0].strip() for line in lines]
        return self.pip_install([line for line in wanted if line], **options)

    def apt_install(self, *packages: str | list[str], force_build: bool = False) -> Image:
        """A new image that needs these system packages: the cluster's nodes must have
        them installed (checked at deploy; rayfn cannot install them)."""
        return replace(self, apt_packages=self.apt_packages + _flat("apt_install", packages))

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
            if not isinstance(name, str):
                raise InvalidError(f"add_local_python_source takes module names, not {name!r}.")
            if not sources.in_worker() and importlib.util.find_spec(name) is None:
                raise InvalidError(f"No local module {name!r} to add (is it importable here?).")
        return replace(self, python_sources=self.python_sources + module_names)

    def add_local_dir(
        self,
        local_path: str | Path,
        remote_path: str,
        copy: bool = False,
        ignore: Sequence[str] = (),
    ) -> Image:
        """A new image whose calls find a copy of the folder ``local_path`` at
        ``remote_path`` (an absolute path is a symlink on the node; a relative one is
        under the call's working directory). ``ignore``: glob patterns left out."""
        path = Path(local_path)
        if not path.is_dir() and not sources.in_worker():  # a worker has the copy, not this
            raise InvalidError(f"add_local_dir: {local_path} is not a directory.")
        return self._with_file(path, remote_path, ignore, "add_local_dir")

    def add_local_file(self, local_path: str | Path, remote_path: str, copy: bool = False) -> Image:
        """A new image whose calls find a copy of the file ``local_path`` at
        ``remote_path`` (as ``add_local_dir``)."""
        path = Path(local_path)
        if not path.is_file() and not sources.in_worker():
            raise InvalidError(f"add_local_file: {local_path} is not a file.")
        return self._with_file(path, remote_path, (), "add_local_file")

    def _with_file(self, path: Path, remote_path: str, ignore: Sequence[str], method: str) -> Image:
        if not isinstance(remote_path, str) or not remote_path.strip("/"):
            raise InvalidError(f"{method}: remote_path must name a path, got {remote_path!r}.")
        if isinstance(ignore, str) or not all(isinstance(p, str) for p in ignore):
            raise NotSupportedError(
                f"{method}(ignore=...) takes a list of glob patterns on rayfn "
                "(a function or a FilePatternMatcher is not supported)."
            )
        entry = (str(path.resolve()), remote_path, tuple(ignore))
        return replace(self, local_files=(*self.local_files, entry))

    def workdir(self, path: str) -> Image:
        """A new image whose calls run in ``path`` (made if missing)."""
        if not isinstance(path, str) or not path:
            raise InvalidError(f"workdir takes a path, got {path!r}.")
        return replace(self, work_dir=path)

    def run_commands(self, *commands: str | list[str], **options: Any) -> Image:
        raise NotSupportedError(
            "Image.run_commands is not supported by rayfn: a Ray cluster builds no images. "
            "Run the commands on every node (cluster.yaml setup_commands), or use "
            "pip_install / uv_pip_install for Python packages."
        )

    def imports(self) -> contextlib.AbstractContextManager[None]:
        """Imports that need the image: where they fail (this machine lacks the
        package), the ``ImportError`` is swallowed, as Modal does locally. On a worker
        (the module is imported there, for every function of it, whatever its image)
        the failure is printed with the call's output, so a ``NameError`` that follows
        says why.

        Example:
            >>> with image.imports():
            ...     import torch
        """
        return _imports_of_image()

    # -- for the cluster ------------------------------------------------------------------

    def spec(self) -> ImageSpec:
        """The image as the cluster builds it; local code and files are uploaded to
        the cluster's GCS now."""
        return ImageSpec(
            pip=self.pip_packages,
            uv_pip=self.uv_packages,
            apt=self.apt_packages,
            python_version=self.python_version,
            registry_image=self.registry_image,
            runtime_env=self.runtime_env(),
        )

    def runtime_env(self) -> dict[str, Any]:
        """The part of the runtime env made on the deploying machine: env vars, and
        local code and files uploaded to the cluster (the pip part is decided in the
        cluster, which knows what it has)."""
        env: dict[str, Any] = {}
        if self.python_sources or self.local_files:
            from rayfn import _connection

            _connection.connect()  # uploads go to the cluster's GCS
        env_vars = dict(self.env_vars)
        if self.work_dir is not None:
            env_vars[image_files.WORKDIR_ENV] = self.work_dir
        if self.python_sources:
            paths = [_module_path(name) for name in self.python_sources]
            env = ray_compat.upload_py_modules({**env, "py_modules": paths})
        if self.local_files:
            with tempfile.TemporaryDirectory(prefix="rayfn-image-") as staging:
                env_vars[image_files.FILES_ENV] = json.dumps(_stage(self.local_files, staging))
                env = ray_compat.upload_working_dir({**env, "working_dir": staging})
        if env_vars:
            env["env_vars"] = env_vars
        return env


def _stage(
    entries: tuple[tuple[str, str, tuple[str, ...]], ...], staging: str
) -> list[tuple[str, str]]:
    """Copy each entry to ``<staging>/<n>/<its name>``; where each goes on the node."""
    placed = []
    for number, (local, remote, ignore) in enumerate(entries):
        source = Path(local)
        inside = Path(str(number)) / source.name
        target = Path(staging) / inside
        target.parent.mkdir(parents=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(*ignore))
        else:
            shutil.copy2(source, target)
        placed.append((remote, str(inside)))
    return placed


def _python_version(version: str | None) -> str | None:
    """``"3.11"`` from ``"3.11"`` or ``"3.11.7"``; None stays None."""
    if version is None:
        return None
    parts = str(version).split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise InvalidError(f"python_version must look like '3.11', got {version!r}.")
    return ".".join(parts[:2])


def _flat(method: str, items: tuple[str | list[str], ...]) -> tuple[str, ...]:
    flat: list[object] = []
    for item in items:
        flat.extend(item if isinstance(item, list | tuple) else [item])
    if not all(isinstance(x, str) and x for x in flat):
        raise InvalidError(f"{method} takes package names (strings), got {list(items)!r}.")
    return tuple(str(x) for x in flat)


# pip_install's options that change nothing on rayfn (it builds no image to cache).
_NO_EFFECT = {"force_build"}


@contextlib.contextmanager
def _imports_of_image() -> Iterator[None]:
    try:
        yield
    except ImportError as exc:
        if sources.in_worker():
            print(
                f"rayfn: an import in a `with image.imports():` block failed here: {exc}",
                file=sys.stderr,
            )


def _requirements(
    packages: tuple[str | list[str], ...], options: dict[str, Any]
) -> tuple[str, ...]:
    unsupported = sorted(set(options) - _NO_EFFECT)
    if unsupported:
        raise NotSupportedError(
            f"pip_install({unsupported[0]}=...) is not supported by rayfn: give requirements "
            "only (a package index can be set in the cluster's pip configuration)."
        )
    return _flat("pip_install", packages)


def _module_path(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise InvalidError(f"No local module {name!r} to add.")
    origin = Path(spec.origin)
    # A package ships as its folder, a module as its file.
    return str(origin.parent if origin.name == "__init__.py" else origin)
