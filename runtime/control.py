"""The control actor: which apps are deployed, with which functions and versions.

Deployed apps are persisted in Ray's GCS key-value store, so a restart of this actor
(or of the node it runs on) loses nothing; ephemeral apps live in memory only, since
they die with the client that runs them anyway.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.experimental import internal_kv

from rayfn.runtime.code import drop_code, put_code
from rayfn.runtime.constants import (
    CODE_VERSIONS_KEPT,
    KV_APP_PREFIX,
    NAMESPACE,
    REGISTRY_ACTOR_NAME,
)
from rayfn.runtime.environment import runtime_env_for
from rayfn.runtime.records import (
    AppInfo,
    AppSpec,
    FunctionInfo,
    FunctionOptions,
    FunctionSpec,
    NotDeployed,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    """An app as deployed: its spec and the version this deploy gave it."""

    spec: AppSpec
    version: int
    deployed_at: float
    runtime_env: dict[str, Any] | None = None

    def info(self) -> AppInfo:
        return AppInfo(
            name=self.spec.name,
            version=self.version,
            functions=tuple(self.spec.functions),
            deployed_at=self.deployed_at,
            source=self.spec.source,
            ephemeral=self.spec.ephemeral,
            runtime_env=self.runtime_env,
        )


class ControlActor:
    """Holds deployed apps. Created get-or-create, detached, named ``rayfn:control``."""

    def __init__(self) -> None:
        self._apps: dict[str, Deployment] = {}
        # Versions only grow, even across stop and redeploy, so a cached old version
        # can never be mistaken for a new one.
        self._last_version: dict[str, int] = {}
        for key in internal_kv._internal_kv_list(KV_APP_PREFIX, namespace=NAMESPACE):
            blob = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
            if blob is None:
                continue
            deployment: Deployment = ray.cloudpickle.loads(blob)
            self._apps[deployment.spec.name] = deployment
            self._last_version[deployment.spec.name] = deployment.version
        logger.info("control actor started with %d deployed apps", len(self._apps))

    async def deploy(self, spec: AppSpec) -> tuple[AppInfo, AppInfo | None]:
        """Deploy ``spec``, replacing any app of the same name. Returns the new app
        and the one it replaced, if any."""
        previous = self._apps.get(spec.name)
        version = self._last_version.get(spec.name, 0) + 1
        # Checked here, in the cluster's environment, not in the deploying client's.
        deployment = Deployment(spec, version, time.time(), runtime_env_for(spec.pip))
        put_code(spec.name, version, {name: fn.code for name, fn in spec.functions.items()})
        drop_code(spec.name, below_version=version - CODE_VERSIONS_KEPT + 1)
        if not spec.ephemeral:
            internal_kv._internal_kv_put(
                _kv_key(spec.name),
                ray.cloudpickle.dumps(deployment),
                overwrite=True,
                namespace=NAMESPACE,
            )
        self._apps[spec.name] = deployment
        self._last_version[spec.name] = version
        self._tell_registry_app_changed(spec.name)
        return deployment.info(), previous.info() if previous else None

    async def stop(self, app: str) -> bool:
        """Undeploy ``app``; False if unknown. Calls already accepted still finish,
        on the code of the last version, which stays in the GCS until a deploy of the
        same name supersedes it; an ephemeral app's code goes at once (its calls that
        had not started then fail saying so)."""
        stopped = self._apps.pop(app, None)
        if stopped is None:
            return False
        drop_code(app, below_version=None if stopped.spec.ephemeral else stopped.version)
        internal_kv._internal_kv_del(_kv_key(app), namespace=NAMESPACE)
        self._tell_registry_app_changed(app)
        return True

    async def list_apps(self) -> list[AppInfo]:
        return sorted((d.info() for d in self._apps.values()), key=lambda a: a.name)

    async def describe_function(self, app: str, function: str) -> FunctionInfo | NotDeployed:
        found = self._find(app, function)
        if isinstance(found, NotDeployed):
            return found
        deployment, spec = found
        return FunctionInfo(
            app, function, deployment.version, spec.signature, spec.options, spec.parameters
        )

    async def get_function(
        self, app: str, function: str
    ) -> tuple[int, FunctionOptions, dict[str, Any] | None] | NotDeployed:
        """The current version, options and runtime env of a function, for the
        registry (its code is in the GCS, for the workers)."""
        found = self._find(app, function)
        if isinstance(found, NotDeployed):
            return found
        deployment, spec = found
        return deployment.version, spec.options, deployment.runtime_env

    def _find(self, app: str, function: str) -> tuple[Deployment, FunctionSpec] | NotDeployed:
        deployment = self._apps.get(app)
        if deployment is None:
            deployed = tuple(sorted(n for n, d in self._apps.items() if not d.spec.ephemeral))
            return NotDeployed(app, None, deployed)
        spec = deployment.spec.functions.get(function)
        if spec is None:
            return NotDeployed(app, function, tuple(deployment.spec.functions))
        return deployment, spec

    def _tell_registry_app_changed(self, app: str) -> None:
        try:
            registry = ray.get_actor(REGISTRY_ACTOR_NAME, namespace=NAMESPACE)
        except ValueError:
            return  # no registry yet: nothing cached to forget
        registry.forget_app.remote(app)


def _kv_key(app: str) -> str:
    return KV_APP_PREFIX + app
