"""The control actor: which apps are deployed, with which functions and versions.

Deployed apps are persisted in Ray's GCS key-value store, so a restart of this actor
(or of the node it runs on) loses nothing; ephemeral apps live in memory only, since
they die with the client that runs them anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ray

from rayfn.records import CallInfo
from rayfn.runtime import clients, code, environment, kv, volume_store, volumes
from rayfn.runtime.code import drop_code, put_code
from rayfn.runtime.constants import (
    CODE_VERSIONS_KEPT,
    KV_APP_PREFIX,
    REAP_EVERY_S,
    REGISTRY_NOTICE_WAIT_S,
    SCHEDULE_TICK_S,
)
from rayfn.runtime.loops import tick_forever
from rayfn.runtime.protocol import LoadedVersion, Submission
from rayfn.runtime.records import (
    AppInfo,
    AppSpec,
    FunctionInfo,
    FunctionOptions,
    FunctionSpec,
    ImageSpec,
    NotDeployed,
)
from rayfn.runtime.schedules import Timetable

logger = logging.getLogger(__name__)


def variant_digest(changes: dict[str, Any]) -> str:
    """A short name for a set of option changes (the same changes, the same name)."""
    return hashlib.sha256(repr(sorted(changes.items())).encode()).hexdigest()[:10]


def with_changes(
    options: FunctionOptions, changes: dict[str, Any], class_name: str
) -> FunctionOptions:
    """``options`` with ``changes``; a class's method's go to its container options
    where they live there (``max_containers``), under the variant's class name."""
    container = options.container
    if container is None:
        return dataclasses.replace(options, **changes)
    own = {k: v for k, v in changes.items() if k != "max_containers"}
    container = dataclasses.replace(
        container,
        class_name=class_name,
        max_containers=changes.get("max_containers", container.max_containers),
    )
    return dataclasses.replace(options, container=container, **own)


@dataclass(frozen=True)
class Deployment:
    """An app as deployed: its spec and the version this deploy gave it."""

    spec: AppSpec
    version: int
    deployed_at: float
    runtime_env: dict[str, Any] | None = None  # the app's image's
    # Functions with an image of their own: theirs (older deployments have none).
    function_envs: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def info(self) -> AppInfo:
        return AppInfo(
            name=self.spec.name,
            version=self.version,
            functions=tuple(self.spec.functions),
            deployed_at=self.deployed_at,
            source=self.spec.source,
            ephemeral=self.spec.ephemeral,
            runtime_env=self.runtime_env,
            function_envs=self.function_envs,
        )


class ControlActor:
    """Holds deployed apps. Created get-or-create, detached, named ``rayfn:control``."""

    def __init__(self) -> None:
        self._apps: dict[str, Deployment] = {}
        # Versions only grow, even across stop and redeploy, so a cached old version
        # can never be mistaken for a new one.
        self._last_version: dict[str, int] = {}
        for key in kv.keys(KV_APP_PREFIX):
            blob = kv.get(key)
            if blob is None:
                continue
            deployment: Deployment = ray.cloudpickle.loads(blob)
            self._apps[deployment.spec.name] = deployment
            self._last_version[deployment.spec.name] = deployment.version
        logger.info("control actor started with %d deployed apps", len(self._apps))
        # Scheduled functions, keyed (app, function, version): when each fires next,
        # and the call its last firing made.
        self._timetable: Timetable[tuple[str, str, int]] = Timetable()
        self._last_tick: dict[tuple[str, str, int], str] = {}
        # Ephemeral apps: when their client last said it is there; and those whose
        # client let go of them (`rayfn run --detach`), which stop once their calls end.
        self._seen: dict[str, float] = {}
        self._detached: set[str] = set()
        # What each app's last deploy replaced, so a deploy that fails halfway (its
        # web functions cannot be served) can be undone.
        self._replaced: dict[str, Deployment | None] = {}
        # made on first use
        self._volumes: volumes.Folders | volume_store.StoreFolders | None = None
        self._scheduler = asyncio.get_running_loop().create_task(
            tick_forever(SCHEDULE_TICK_S, self._tick, "scheduler or reaper pass")
        )

    async def deploy(self, spec: AppSpec) -> tuple[AppInfo, AppInfo | None]:
        """Deploy ``spec``, replacing any app of the same name. Returns the new app
        and the one it replaced, if any."""
        previous = self._apps.get(spec.name)
        version = self._last_version.get(spec.name, 0) + 1
        # Built here, in the cluster's environment, not in the deploying client's.
        runtime_env = environment.runtime_env_of(spec.image) if spec.image else None
        function_envs = {
            name: environment.runtime_env_of(fn.image)
            for name, fn in spec.functions.items()
            if fn.image is not None
        }
        deployment = Deployment(spec, version, time.time(), runtime_env, function_envs)
        for name, values in spec.inline_secrets.items():
            code.put_secret(name, values)
        put_code(spec.name, version, {name: fn.code for name, fn in spec.functions.items()})
        drop_code(spec.name, below_version=version - CODE_VERSIONS_KEPT + 1)
        if not spec.ephemeral:
            kv.put(_kv_key(spec.name), ray.cloudpickle.dumps(deployment))
        self._apps[spec.name] = deployment
        self._replaced[spec.name] = previous
        self._last_version[spec.name] = version
        if spec.ephemeral:
            self._seen[spec.name] = time.monotonic()
        await self._tell_registry_app_changed(spec.name)
        return deployment.info(), previous.info() if previous else None

    async def stop(self, app: str, cancel_why: str | None = None) -> int | None:
        """Undeploy ``app``; None if unknown. Calls already accepted still finish, on
        the code of the last version, which stays in the GCS until a deploy of the same
        name supersedes it; an ephemeral app's code goes at once (its calls that had
        not started then fail saying so). With ``cancel_why``, its unfinished calls are
        cancelled instead; returns how many."""
        stopped = self._apps.pop(app, None)
        if stopped is None:
            return None
        self._replaced.pop(app, None)
        self._seen.pop(app, None)
        self._detached.discard(app)
        cancelled = await self._tell_registry_app_changed(app, cancel_why)
        drop_code(app, below_version=None if stopped.spec.ephemeral else stopped.version)
        kv.delete(_kv_key(app))
        return cancelled

    async def roll_back(self, app: str, version: int) -> tuple[AppSpec, AppInfo] | None:
        """Undo the deploy that made ``version`` of ``app`` (its web functions could not
        be served): the deployment it replaced comes back (as a new version, versions
        only grow), or, if there was none, the app stops. Returns the spec and
        runtime envs now deployed, for the client to serve its web functions again."""
        current = self._apps.get(app)
        if current is None or current.version != version:
            return None  # deployed again meanwhile: that deploy is the one that counts
        previous = self._replaced.pop(app, None)
        if previous is None:
            await self.stop(app)
            return None
        await self.deploy(previous.spec)
        self._replaced.pop(app, None)
        return previous.spec, self._apps[app].info()

    async def heartbeat(self, app: str) -> bool:
        """The client running ephemeral ``app`` is still there; False: the app is gone."""
        if app not in self._apps:
            return False
        self._seen[app] = time.monotonic()
        return True

    async def end_run(self, app: str, detach: bool) -> int:
        """The client of ephemeral ``app`` is done with it. Detached, the app stays
        until its calls end: returns how many have not. Otherwise it stops now,
        cancelling its unfinished calls: returns how many it cancelled."""
        if not detach:
            return await self.stop(app, _RUN_ENDED) or 0
        if app not in self._apps:
            return 0
        self._detached.add(app)
        self._seen.pop(app, None)
        stats = await clients.registry().stats(app)
        return stats["unfinished"]

    async def _reap(self) -> None:
        """Stop the ephemeral apps whose client is gone (no heartbeat for their
        grace period), cancelling their calls, and detached ones whose calls ended."""
        now = time.monotonic()
        for app, seen in list(self._seen.items()):
            grace = self._apps[app].spec.client_grace if app in self._apps else None
            if grace is not None and now - seen > grace:
                cancelled = await self.stop(app, _CLIENT_GONE)
                logger.warning(
                    "%s: client gone for %.0fs; stopped, %s calls cancelled", app, grace, cancelled
                )
        for app in list(self._detached):
            if (await clients.registry().stats(app))["unfinished"] == 0:
                await self.stop(app)

    async def image_problems(self, images: list[tuple[str, ImageSpec]]) -> list[str]:
        """What this cluster cannot do of each ``(whose, image)``, a sentence each
        (checked here, on the head node, before anything is deployed)."""
        return [
            problem for label, image in images for problem in environment.problems(image, label)
        ]

    # -- volumes (runtime/volumes.py): files in and out for clients anywhere -------------

    def _folders(self) -> volumes.Folders | volume_store.StoreFolders:
        if self._volumes is None:
            self._volumes = volumes.folders_at(volumes.configured_root())
            self._volumes.publish()
        return self._volumes

    async def volume(self, name: str, create: bool) -> bool:
        """Whether volume ``name`` exists (made first, with ``create``)."""
        if create:
            self._folders().create(name)
        return self._folders().exists(name)

    async def delete_volume(self, name: str) -> bool:
        return await asyncio.to_thread(self._folders().delete, name)

    async def volume_names(self) -> list[str]:
        return self._folders().names()

    async def volume_listdir(self, name: str, path: str, recursive: bool) -> list[volumes.Entry]:
        return await asyncio.to_thread(self._folders().listdir, name, path, recursive)

    async def volume_read(self, name: str, path: str) -> bytes:
        return await asyncio.to_thread(self._folders().read, name, path)

    async def volume_write(self, name: str, files: list[tuple[str, bytes]], force: bool) -> None:
        await asyncio.to_thread(self._folders().write, name, files, force)

    async def volume_remove(self, name: str, path: str, recursive: bool) -> None:
        await asyncio.to_thread(self._folders().remove, name, path, recursive)

    async def missing_secrets(self, names: list[str]) -> list[str]:
        """Those of ``names`` that no secret has."""
        return [name for name in names if code.get_secret(name) is None]

    async def put_secret(self, name: str, values: dict[str, str]) -> None:
        code.put_secret(name, values)

    async def delete_secret(self, name: str) -> bool:
        return code.delete_secret(name)

    async def list_secrets(self) -> list[tuple[str, list[str]]]:
        """Named secrets with their keys (never their values)."""
        found = []
        for name in code.secret_names():
            values = code.get_secret(name)
            if values is not None and not name.startswith("inline-"):
                found.append((name, sorted(values)))
        return found

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

    async def describe_app(self, app: str) -> list[FunctionInfo] | NotDeployed:
        """Every function of a deployed app, as ``describe_function`` tells one."""
        deployment = self._apps.get(app)
        if deployment is None:
            deployed = tuple(sorted(n for n, d in self._apps.items() if not d.spec.ephemeral))
            return NotDeployed(app, None, deployed)
        return [
            FunctionInfo(app, name, deployment.version, spec.signature, spec.options)
            for name, spec in deployment.spec.functions.items()
        ]

    async def get_function(self, app: str, function: str) -> LoadedVersion | NotDeployed:
        """The current version, options and runtime env of a function, for the
        registry (its code is in the GCS, for the workers)."""
        found = self._find(app, function)
        if isinstance(found, NotDeployed):
            return found
        deployment, spec = found
        env = deployment.function_envs.get(function, deployment.runtime_env)
        return LoadedVersion(deployment.version, spec.options, env)

    async def add_variant(self, app: str, name: str, changes: dict[str, Any]) -> str | NotDeployed:
        """``with_options``: a copy of function (or class) ``name`` of ``app``'s current
        version with ``changes`` to its options (FunctionOptions fields), under a name of
        its own, so the registry queues, limits and pools it apart. Returns that name;
        the same changes give the same one. A redeploy of the app drops variants."""
        deployment = self._apps.get(app)
        if deployment is None:
            missing = self._find(app, name)
            assert isinstance(missing, NotDeployed)
            return missing
        variant = f"{name}[{variant_digest(changes)}]"
        functions = deployment.spec.functions
        bases = {n: f for n, f in functions.items() if n == name or n.startswith(name + ".")}
        if not bases:
            return NotDeployed(app, name, tuple(functions))
        added = {}
        for base_name, base in bases.items():
            options = with_changes(base.options, changes, class_name=variant)
            full_name = variant + base_name[len(name) :]
            added[full_name] = dataclasses.replace(base, name=full_name, options=options)
        if all(n in functions for n in added):
            return variant
        envs = {
            n: deployment.function_envs[b]
            for n, b in zip(added, bases, strict=True)
            if b in deployment.function_envs
        }
        updated = dataclasses.replace(
            deployment,
            spec=dataclasses.replace(deployment.spec, functions={**functions, **added}),
            function_envs={**deployment.function_envs, **envs},
        )
        put_code(app, deployment.version, {n: f.code for n, f in added.items()})
        if not updated.spec.ephemeral:
            kv.put(_kv_key(app), ray.cloudpickle.dumps(updated))
        self._apps[app] = updated
        return variant

    def _find(self, app: str, function: str) -> tuple[Deployment, FunctionSpec] | NotDeployed:
        deployment = self._apps.get(app)
        if deployment is None:
            deployed = tuple(sorted(n for n, d in self._apps.items() if not d.spec.ephemeral))
            return NotDeployed(app, None, deployed)
        spec = deployment.spec.functions.get(function)
        if spec is None:
            return NotDeployed(app, function, tuple(deployment.spec.functions))
        return deployment, spec

    async def _tick(self, ticks: int) -> None:
        await self._fire_due(time.time())
        if ticks % round(REAP_EVERY_S / SCHEDULE_TICK_S) == 0:
            await self._reap()

    async def _fire_due(self, now: float) -> None:
        """Spawn the scheduled functions that are due, skipping one whose previous
        tick still runs. Stopped or redeployed apps drop out by themselves: their
        (app, function, version) keys are no longer among the deployments."""
        scheduled = {
            (app, function, deployment.version): (spec.options.schedule, deployment.deployed_at)
            for app, deployment in self._apps.items()
            if not deployment.spec.ephemeral
            for function, spec in deployment.spec.functions.items()
            if spec.options.schedule is not None
        }
        for key in self._timetable.due(scheduled, now):
            app, function, _ = key
            if await self._still_running(self._last_tick.get(key)):
                logger.info("%s.%s: tick skipped, the last one still runs", app, function)
                continue
            tick = Submission(app, function, _NO_ARGUMENTS)
            (answer,) = (await clients.registry().submit([tick], None)).answers
            if isinstance(answer, str):
                self._last_tick[key] = answer
        for key in self._last_tick.keys() - scheduled.keys():
            del self._last_tick[key]

    @staticmethod
    async def _still_running(call_id: str | None) -> bool:
        if call_id is None:
            return False
        info = await clients.registry().describe(call_id)
        return isinstance(info, CallInfo) and not info.status.is_terminal

    @staticmethod
    async def _tell_registry_app_changed(app: str, cancel_why: str | None = None) -> int:
        """Waited for, so that a spawn made after ``deploy`` returns runs the new version
        (a registry that does not answer soon learns it when it reloads the function).
        Returns how many calls it cancelled (with ``cancel_why``)."""
        registry = clients.existing_registry()
        if registry is None:
            return 0  # no registry yet: nothing cached to forget, no calls
        try:
            return await registry.forget_app(app, cancel_why).within(REGISTRY_NOTICE_WAIT_S)
        except (TimeoutError, ray.exceptions.RayError) as exc:
            logger.warning("the registry did not confirm that %s changed: %s", app, exc)
            return 0


_RUN_ENDED = (
    "Its app's run ended before the call did (`rayfn run --detach` or "
    "`app.run(detach=True)` keeps calls running)."
)
_CLIENT_GONE = "Its app's client went away (no heartbeat for its grace period)."

# A scheduled tick calls the function with no arguments.
_NO_ARGUMENTS: bytes = ray.cloudpickle.dumps(((), {}))


def _kv_key(app: str) -> str:
    return KV_APP_PREFIX + app
