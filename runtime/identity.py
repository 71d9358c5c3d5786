"""Who is who: the names of deployments and of deployed functions. Their text forms
are made and read here only.

A *deployment* is what calls go to: a deployed app (``"jobs"``), or one run of an
ephemeral app (``"jobs@ep-1a2b3c4d5e6f"``, from ``app.run()``, ``rayfn run`` or
``rayfn serve``), which users see under its app's name.
"""

from __future__ import annotations

import secrets
from typing import NamedTuple

# Between an app's name and the id of one ephemeral run of it.
_RUN_MARK = "@ep-"


class DeploymentKey(NamedTuple):
    """A deployment: an app, and for an ephemeral run, the run's id."""

    app: str
    run: str | None = None

    @classmethod
    def parse(cls, text: str) -> DeploymentKey:
        app, mark, run = text.partition(_RUN_MARK)
        return cls(app, run if mark else None)

    @classmethod
    def new_run(cls, app: str) -> DeploymentKey:
        """A fresh ephemeral run of ``app``."""
        return cls(app, secrets.token_hex(6))

    def __str__(self) -> str:
        return self.app if self.run is None else f"{self.app}{_RUN_MARK}{self.run}"


def app_of(deployment: str) -> str:
    """The app a deployment belongs to, as users see it: ``"jobs"`` for both
    ``"jobs"`` and ``"jobs@ep-1a2b3c4d5e6f"``."""
    return DeploymentKey.parse(deployment).app


class FunctionKey(NamedTuple):
    """A function of a deployment: what calls name, whatever version runs them."""

    deployment: str
    function: str

    @property
    def label(self) -> str:
        """``"app.function"``, as messages and the Ray dashboard show it."""
        return f"{app_of(self.deployment)}.{self.function}"


class FunctionVersion(NamedTuple):
    """One deployed version of a function: what a launch runs."""

    deployment: str
    function: str
    version: int

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.deployment, self.function)
