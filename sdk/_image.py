"""``Image``: the environment a function runs in. ``pip_install`` becomes a Ray
``runtime_env`` for the app's tasks and replicas, for the requirements the cluster's
environment lacks; the base image and Python version are recorded only (a Ray cluster
runs one environment)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Image:
    """An immutable description of a container image, Modal style.

    Example:
        >>> image = rayfn.Image.debian_slim().pip_install("fastapi[standard]")
    """

    base: str = "debian_slim"
    python_version: str | None = None
    pip_packages: tuple[str, ...] = field(default=())

    @classmethod
    def debian_slim(cls, python_version: str | None = None) -> Image:
        return cls(base="debian_slim", python_version=python_version)

    def pip_install(self, *packages: str | list[str]) -> Image:
        """A new image with these pip requirements added."""
        flat: list[str] = []
        for item in packages:
            flat.extend([item] if isinstance(item, str) else item)
        return replace(self, pip_packages=self.pip_packages + tuple(flat))
