"""Get-or-create handles to rayfn's detached actors (the Ray Serve controller recipe:
named, namespaced, detached, restarted forever, holding no CPU, on the head node)."""

from __future__ import annotations

from typing import Any

import ray
from ray.actor import ActorHandle

from rayfn.runtime.constants import (
    ACTOR_MAX_CONCURRENCY,
    CONTROL_ACTOR_NAME,
    NAMESPACE,
    ON_HEAD_NODE,
    REGISTRY_ACTOR_NAME,
)
from rayfn.runtime.control import ControlActor
from rayfn.runtime.registry import CallRegistry

_DETACHED: dict[str, Any] = {
    "namespace": NAMESPACE,
    "lifetime": "detached",
    "get_if_exists": True,
    "max_restarts": -1,
    # An actor that asks for a CPU holds it for life; rayfn's actors only wait.
    "num_cpus": 0,
    "resources": ON_HEAD_NODE,
    "max_concurrency": ACTOR_MAX_CONCURRENCY,
}

# Typed as Any: Ray's stubs make .options().remote() a union with the class itself.
_RemoteControl: Any = ray.remote(ControlActor)
_RemoteRegistry: Any = ray.remote(CallRegistry)


def control_actor() -> ActorHandle[ControlActor]:
    """The control actor, created on first use."""
    handle: ActorHandle[ControlActor] = _RemoteControl.options(
        name=CONTROL_ACTOR_NAME, **_DETACHED
    ).remote()
    return handle


def registry_actor() -> ActorHandle[CallRegistry]:
    """The call registry, created on first use."""
    handle: ActorHandle[CallRegistry] = _RemoteRegistry.options(
        name=REGISTRY_ACTOR_NAME, **_DETACHED
    ).remote()
    return handle
