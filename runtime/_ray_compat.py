"""Every private Ray API rayfn uses, each behind one small typed function.

Checked against Ray 2.60.0 (the version ``pyproject.toml`` pins). Nothing else in
rayfn imports ``ray._private``, ``ray._raylet``, ``ray._common``,
``ray.autoscaler._private``, ``ray.autoscaler.v2``, ``ray.core.generated`` or
``ray.experimental.internal_kv``, or calls ``serve._run``
(``tests/unit/test_layers.py`` fails if one does), so a Ray upgrade is checked here.

On a Ray upgrade, re-check for each group below that the names still exist with the
same arguments and meaning (each function's docstring says what it relies on), then run
the integration tests named beside it:

- GCS key-value store: ``internal_kv._internal_kv_*`` and the GCS client's
  ``async_internal_kv_put``/``async_internal_kv_del`` (tests/test_durability.py).
- Auth token and config: ``AuthenticationTokenLoader``, ``Config.initialize`` and the
  GCS's ``GetClusterId`` RPC (tests/test_cli.py).
- Cluster-mode switch: ``ray_constants.ENABLE_RAY_CLUSTER`` (tests/test_cli.py).
- Runtime env uploads: ``upload_py_modules_if_needed``, ``upload_working_dir_if_needed``
  (tests/test_images.py).
- Pending demand and cluster state: ``get_cluster_resource_state`` and
  ``NodeStatus`` (tests/test_autoscaler.py, tests/test_http.py).
- Log subscription: ``GcsLogSubscriber`` and the shape of its batches
  (tests/test_cli.py: ``rayfn run`` and ``enable_output`` show what calls print).
- Dashboard URL: ``ray._private.worker.get_dashboard_url`` (``rayfn app logs``,
  tests/test_observability.py).
- Serve's private entry point: ``serve._run(..., _blocking=...)`` (tests/test_http.py).
- CLI launcher config validation: ``ray.autoscaler._private.util`` (tests/test_autoscaler.py).

Heavy imports (Serve, gRPC, the autoscaler) happen inside the function that needs them,
so a worker that only reads the key-value store loads none of them.

Each ``# type: ignore[attr-defined]`` here marks a name Ray's own type information lacks:
``ray/_raylet.pyi`` declares only the id types and ``ObjectRef`` of the compiled
module, and the generated ``*_pb2`` modules make their classes at import, with no stubs.
On an upgrade, ``warn_unused_ignores`` says when Ray has caught up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from ray.experimental import internal_kv

if TYPE_CHECKING:
    from ray.serve import Application

# -- GCS key-value store ---------------------------------------------------------------
# Ray's only store that outlives every actor and worker: rayfn keeps its journal, deployed
# code, apps, secrets and Dict/Queue contents there. Ray has no public key-value API.


def kv_get(key: str, *, namespace: str) -> bytes | None:
    """The value at ``key``, or None if there is none."""
    return internal_kv._internal_kv_get(key, namespace=namespace)


def kv_put(key: str, value: bytes, *, namespace: str) -> None:
    """Set ``key`` to ``value``, replacing any value it had."""
    internal_kv._internal_kv_put(key, value, overwrite=True, namespace=namespace)


def kv_delete(key: str, *, namespace: str, by_prefix: bool = False) -> int:
    """Delete ``key`` (with ``by_prefix``, every key starting with it); how many went."""
    return internal_kv._internal_kv_del(key, del_by_prefix=by_prefix, namespace=namespace)


def kv_keys(prefix: str, *, namespace: str) -> list[str]:
    """The keys that start with ``prefix``."""
    return [key.decode() for key in internal_kv._internal_kv_list(prefix, namespace=namespace)]


async def kv_put_async(key: str, value: bytes, *, namespace: str) -> None:
    """``kv_put`` without blocking the event loop (the journal's group commits)."""
    client = internal_kv.internal_kv_get_gcs_client()
    await client.async_internal_kv_put(
        key.encode(), value, True, namespace=namespace.encode(), timeout=None
    )


async def kv_delete_async(key: str, *, namespace: str, by_prefix: bool = False) -> None:
    """``kv_delete`` without blocking the event loop."""
    client = internal_kv.internal_kv_get_gcs_client()
    await client.async_internal_kv_del(
        key.encode(), by_prefix, namespace=namespace.encode(), timeout=None
    )


# -- Auth token and config -------------------------------------------------------------
# Ray reads RAY_AUTH_MODE/RAY_AUTH_TOKEN_PATH once per process; rayfn sets them after Ray
# is imported (to join its own local cluster) and asks the GCS a question before ray.init.


def auth_token() -> str | None:
    """The auth token this process would send, whatever ``RAY_AUTH_MODE`` says; None if
    it has none."""
    from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]  # see top

    loader = AuthenticationTokenLoader.instance()
    if not loader.has_token(ignore_auth_mode=True):
        return None
    token: str = loader.get_raw_token(ignore_auth_mode=True)
    return token


def reload_auth_config() -> None:
    """Make Ray read its config and auth token again, after ``RAY_AUTH_*`` changed in
    ``os.environ`` (as ``ray.init`` itself does when it enables token auth)."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # see top

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def ask_cluster_id(address: str, *, token: str | None, timeout_s: float) -> None:
    """Ask the GCS at ``address`` (``host:port``) for its cluster id: the cheapest
    question it answers, used to tell "wrong token" and "nothing there" apart quickly.

    Raises:
        grpc.RpcError: the GCS refused (``UNAUTHENTICATED``), did not answer
            (``UNAVAILABLE``), or failed otherwise.
    """
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = None if token is None else [("authorization", f"Bearer {token}")]
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        stub.GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(),  # type: ignore[attr-defined]  # see top
            timeout=timeout_s,
            metadata=metadata,
        )


# -- Cluster-mode switch ---------------------------------------------------------------


def use_single_machine_mode() -> None:
    """Treat clusters as single-machine in this process, as
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` does: Ray reads that variable once, at
    import, into ``ray_constants.ENABLE_RAY_CLUSTER``, so setting the environment after
    ``import ray`` is not enough."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


# -- Runtime env uploads ---------------------------------------------------------------
# What `ray.init(runtime_env=...)` does for a job, done for one app's runtime env: the
# local files go to the cluster's GCS and the env names them by URI.


def upload_py_modules(runtime_env: dict[str, Any]) -> dict[str, Any]:
    """``runtime_env`` with its ``py_modules`` paths uploaded and replaced by URIs."""
    from ray._private.runtime_env.py_modules import upload_py_modules_if_needed

    return upload_py_modules_if_needed(runtime_env, False)


def upload_working_dir(runtime_env: dict[str, Any]) -> dict[str, Any]:
    """``runtime_env`` with its ``working_dir`` uploaded and replaced by a URI."""
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

    return upload_working_dir_if_needed(runtime_env, False)


# -- Pending demand and cluster state --------------------------------------------------


def pending_demand() -> tuple[list[tuple[dict[str, float], int]], list[dict[str, float]]]:
    """What Ray cannot place now (resource shapes, each with how many tasks and actors
    wait for it), and each live node's total resources: the GCS's view, as the
    autoscaler reads it (about a millisecond; blocking, so call it off the event loop).
    Needs ``ray.init`` first."""
    from ray.autoscaler.v2.sdk import get_cluster_resource_state
    from ray.core.generated.autoscaler_pb2 import NodeStatus  # type: ignore[attr-defined]  # see top

    # The connected worker's GCS client (``ray.init`` hands the same one to internal_kv).
    state = get_cluster_resource_state(internal_kv.internal_kv_get_gcs_client())
    waiting = [(dict(r.request.resources_bundle), r.count) for r in state.pending_resource_requests]
    nodes = [dict(n.total_resources) for n in state.node_states if n.status != NodeStatus.DEAD]
    return waiting, nodes


# -- Log subscription ------------------------------------------------------------------


class LogSubscriber(Protocol):
    """A subscriber to the GCS log channel, where Ray's log monitors publish what
    workers print. A batch is a dict with ``lines`` (list of str), ``is_err``, and the
    ``task_name``/``actor_name`` of the worker that printed them."""

    def poll(self, timeout: float) -> dict[str, Any] | None:
        """The next batch, an empty dict if none came within ``timeout`` seconds, or
        None when the GCS does not answer. Raises once the cluster has gone."""
        ...

    def close(self) -> None:
        """Stop; wakes a ``poll`` in flight (which then raises)."""
        ...


def subscribe_to_logs(gcs_address: str) -> LogSubscriber:
    """A subscriber to the log channel of the GCS at ``gcs_address``, subscribed."""
    from ray._raylet import GcsLogSubscriber  # type: ignore[attr-defined]  # see top

    raylet_subscriber = GcsLogSubscriber(address=gcs_address)
    raylet_subscriber.subscribe()
    subscriber: LogSubscriber = raylet_subscriber
    return subscriber


# -- Dashboard URL ---------------------------------------------------------------------


def dashboard_url() -> str | None:
    """The connected cluster's dashboard address (``host:port``, or a URL when
    ``RAY_OVERRIDE_DASHBOARD_URL`` is set); None or empty if it runs none. Ray's public
    way, ``ray.init().address_info["webui_url"]``, only works on the ``ray.init`` call."""
    from ray._private import worker

    url: str | None = worker.get_dashboard_url()
    return url


# -- Serve's private entry point -------------------------------------------------------


def serve_running() -> bool:
    """Whether Ray Serve runs on this cluster now (its controller actor lives): a
    ``serve.start`` then keeps the HTTP options Serve was first started with."""
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return False
    return True


def serve_run(app: Application, *, name: str, route_prefix: str, wait: bool) -> None:
    """Deploy ``app`` on Serve as ``serve.run`` does, but with ``wait=False`` return
    once Serve accepted it instead of waiting for its replicas to run (a replica no node
    can hold would make ``serve.run`` wait forever)."""
    from ray import serve

    serve._run(app, name=name, route_prefix=route_prefix, _blocking=wait)


# -- CLI launcher config validation ----------------------------------------------------


def validate_launcher_config(config: dict[str, Any]) -> None:
    """Check a cluster launcher config (``ray up``'s YAML, loaded) as ``ray up`` would,
    with its defaults filled in first; the autoscaler's INFO notes are kept quiet.

    Raises:
        Exception: whatever Ray's validation raises (jsonschema's ``ValidationError``,
            ``ValueError``...) for a config it rejects.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    autoscaler_log = logging.getLogger("ray.autoscaler")
    level = autoscaler_log.level
    autoscaler_log.setLevel(logging.WARNING)
    try:
        validate_config(prepare_config(config))
    finally:
        autoscaler_log.setLevel(level)
