"""Putting rayfn's HTTP side on Ray Serve: the job API and users' web functions.

Serve application names: ``rayfn-api`` for the job API (route ``/``), and
``rayfn:<app>:<function>`` for each web function (route ``/<app>/<function>`` unless
its decorator set one). Serve routes by longest prefix, so users' apps win over the
API's catch-all ``/``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from ray.experimental import internal_kv
from ray.serve.config import BackpressureConfig

from rayfn._config import settings
from rayfn._function import Function
from rayfn._serialization import dumps_function
from rayfn._web import check_route_free
from rayfn.exception import InvalidError
from rayfn.runtime.constants import KV_API_CONFIG, NAMESPACE
from rayfn.runtime.records import FunctionOptions, FunctionSpec, WebEndpoint
from rayfn.runtime.resources import fits_some_node, held_resources
from rayfn.serve._guard import token_digest
from rayfn.serve._hosting import ApiConfig, JobAPI, WebFunction

logger = logging.getLogger(__name__)
# Serve logs each of our calls at INFO ("Connecting to existing Serve app..."); the CLI
# prints what matters itself.
logging.getLogger("ray.serve").setLevel(logging.WARNING)

API_APP_NAME = "rayfn-api"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Requests one API replica serves at once (Serve's default of 5 let five stalled
# clients freeze the API), and how many more may wait at the proxies before 503.
API_MAX_ONGOING_REQUESTS = 512
API_MAX_QUEUED_REQUESTS = 512
# What a 503 tells clients to wait before trying again, in seconds.
API_RETRY_AFTER_S = 1.0
# The API adds a replica per this many cores of the cluster, up to API_MAX_REPLICAS.
API_CPUS_PER_REPLICA = 8
API_MAX_REPLICAS = 8


@dataclass(frozen=True)
class Endpoint:
    function: str
    url: str


def base_url() -> str:
    s = settings()
    return f"http://{s.http_host}:{s.http_port}"


def start_http() -> None:
    """Start Serve's HTTP proxy on ``RAYFN_HTTP_HOST:RAYFN_HTTP_PORT`` if it is not up."""
    s = settings()
    serve.start(http_options={"host": s.http_host, "port": s.http_port})


def deploy_api() -> str:
    """Run the job API on Serve with the settings now in force; returns its base URL.

    A running API with the same settings is left alone; one with other settings (a
    new ``RAYFN_API_TOKEN``, body or result limits) is redeployed, and this returns
    once the new one answers. Without ``RAYFN_API_TOKEN`` a running API keeps the
    token it has: removing it takes ``rayfn http stop`` first, never a forgotten
    variable.
    """
    start_http()
    s = settings()
    running = _running_api_config()
    token = s.api_token.get_secret_value() if s.api_token else None
    digest = token_digest(token) if token else (running and running.token_sha256)
    config = ApiConfig(digest or None, s.http_max_body, s.http_max_result, s.http_body_timeout)
    if config == running:
        return base_url()
    if config.token_sha256 is None and s.http_host not in _LOOPBACK:
        logger.warning(
            "The rayfn job API listens on %s without a token: anyone who reaches it "
            "can run your functions. Set RAYFN_API_TOKEN.",
            s.http_host,
        )
    deployment = serve.deployment(
        name="JobAPI",
        ray_actor_options={"num_cpus": 0},
        # The API mostly waits on rayfn's actors: many requests share a replica, and
        # past that many more wait at the proxy; beyond both, Serve answers 503 with
        # Retry-After instead of queueing without bound.
        max_ongoing_requests=API_MAX_ONGOING_REQUESTS,
        max_queued_requests=API_MAX_QUEUED_REQUESTS,
        backpressure_config=BackpressureConfig(status_code=503, retry_after_s=API_RETRY_AFTER_S),
        **api_replicas(int(ray.cluster_resources().get("CPU", 1))),
    )(JobAPI)
    serve.run(deployment.bind(config), name=API_APP_NAME, route_prefix="/")
    internal_kv._internal_kv_put(KV_API_CONFIG, config.to_json(), namespace=NAMESPACE)
    return base_url()


def stop_api() -> None:
    """Remove the job API from Serve (and what it ran with)."""
    serve.delete(API_APP_NAME)
    internal_kv._internal_kv_del(KV_API_CONFIG, namespace=NAMESPACE)


def _running_api_config() -> ApiConfig | None:
    """The settings the running job API was deployed with; None if none runs (or an
    older rayfn deployed it without saying)."""
    if API_APP_NAME not in serve.status().applications:
        return None
    stored = internal_kv._internal_kv_get(KV_API_CONFIG, namespace=NAMESPACE)
    return None if stored is None else ApiConfig.from_json(stored)


def api_replicas(cores: int) -> dict[str, Any]:
    """The API's replica options on a cluster of ``cores`` CPUs: one replica per
    API_CPUS_PER_REPLICA cores, started at one and added by Serve's autoscaler as
    requests pile up."""
    most = max(1, min(API_MAX_REPLICAS, cores // API_CPUS_PER_REPLICA))
    if most == 1:
        return {"num_replicas": 1}
    return {
        "autoscaling_config": {
            "min_replicas": 1,
            "max_replicas": most,
            "target_ongoing_requests": API_MAX_ONGOING_REQUESTS // 4,
        }
    }


def deploy_web_functions(
    app_name: str,
    functions: Mapping[str, Function | FunctionSpec],
    *,
    runtime_env: dict[str, Any] | None = None,
    dev: bool = False,
) -> list[Endpoint]:
    """Run each web function of an app on Serve, replacing what the app ran there
    before; returns their URLs. ``dev`` (``rayfn serve``) serves under
    ``/<app>-dev/...`` so it does not collide with the deployed app."""
    web = check_routes(app_name, functions, dev=dev)
    if not web:
        return []
    start_http()
    stale = set(_serve_apps_of(app_name, dev)) - {_serve_name(app_name, n, dev) for n in web}
    for name in stale:
        serve.delete(name)
    endpoints = []
    for name, function in web.items():
        assert function.web is not None
        code, options = _code_and_options(function)
        prefix = _route_prefix(app_name, name, function.web, dev)
        # What its calls would ask of Ray (memory=, gpu=), but an HTTP handler mostly
        # waits: it holds no CPU unless the function asks for one.
        cluster = ray.cluster_resources() if options.gpu is not None else None  # fallbacks
        actor_options = {**options.ray_task_options(cluster), "num_cpus": options.cpu or 0.0}
        if runtime_env is not None:
            actor_options["runtime_env"] = runtime_env
        deployment = serve.deployment(name=f"{app_name}.{name}", ray_actor_options=actor_options)(
            WebFunction
        )
        # Serve waits for the replica to run; one no node can hold would wait forever.
        needs = held_resources(actor_options)
        wait = fits_some_node(needs, _node_totals())
        if not wait:
            logger.warning(
                "%s.%s waits for a node with %s: no node of the cluster has that now",
                app_name,
                name,
                ", ".join(f"{amount:g} {resource}" for resource, amount in needs.items()),
            )
        try:
            serve._run(
                deployment.bind(code, function.web.kind, function.web.method),
                name=_serve_name(app_name, name, dev),
                route_prefix=prefix,
                _blocking=wait,
            )
        except Exception as exc:
            summary, frames = _why_it_failed(_serve_name(app_name, name, dev)) or (str(exc), "")
            failed = InvalidError(f"Serving {app_name}.{name} at {prefix} failed: {summary}")
            if frames:
                failed.add_note(frames)  # the user's traceback, from the replica
            raise failed from None
        endpoints.append(Endpoint(name, base_url() + prefix))
    return endpoints


def _node_totals() -> list[dict[str, float]]:
    return [node["Resources"] for node in ray.nodes() if node["Alive"]]


def check_routes(
    app_name: str, functions: Mapping[str, Function | FunctionSpec], *, dev: bool = False
) -> dict[str, Function | FunctionSpec]:
    """The app's web functions, once none of their routes is the job API's.

    Raises:
        InvalidError: a web function would be served under a path the job API
            reserves (``/v1``, ``/healthz``, ``/docs``...).
    """
    web = {name: f for name, f in functions.items() if f.web is not None}
    for name, function in web.items():
        assert function.web is not None
        prefix = _route_prefix(app_name, name, function.web, dev)
        check_route_free(prefix, f"Web function {app_name}.{name}")
    return web


def web_url(app_name: str, function: str, web: WebEndpoint, *, dev: bool = False) -> str:
    """Where a web function is (or will be) served."""
    return base_url() + _route_prefix(app_name, function, web, dev)


def delete_web_functions(app_name: str, *, dev: bool = False) -> list[str]:
    """Remove every Serve application of an app's web functions."""
    names = _serve_apps_of(app_name, dev)
    for name in names:
        serve.delete(name)
    return names


def _code_and_options(function: Function | FunctionSpec) -> tuple[bytes, FunctionOptions]:
    if isinstance(function, FunctionSpec):  # as deployed before: a deploy rolled back
        return function.code, function.options
    raw, options = function.definition()
    return dumps_function(raw), options


def _why_it_failed(serve_name: str) -> tuple[str, str] | None:
    """What Serve says of a web function's failed deployment: its replicas' error."""
    status = serve.status().applications.get(serve_name)
    if status is None:
        return None
    for deployment in status.deployments.values():
        if deployment.message:
            return replica_failure(deployment.message)
    return (status.message, "") if status.message else None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FRAME = re.compile(r'^  File "([^"]+)", line \d+')
_NOT_USERS = ("/site-packages/", "/dist-packages/", "/lib/python3", "<frozen")


def replica_failure(message: str) -> tuple[str, str]:
    """From Serve's message for a deployment whose replicas failed to start (a long
    text of Ray's and Serve's frames around the user's error): the error's last line,
    and its innermost traceback with only the user's frames."""
    text = _ANSI.sub("", message).strip()
    if "Traceback (most recent call last):" not in text:
        return text.splitlines()[-1] if text else message, ""
    inner = text.rsplit("Traceback (most recent call last):", 1)[1]
    lines = [line for line in inner.splitlines() if line.strip()]
    if not lines:
        return text.strip(), ""
    kept = ["Traceback (most recent call last):"]
    keep = True
    for line in lines:
        frame = _FRAME.match(line)
        if frame is not None:
            keep = not any(part in frame.group(1) for part in _NOT_USERS)
        elif not line.startswith(" "):
            keep = True  # the exception's own lines
        if keep:
            kept.append(line)
    return lines[-1].strip(), "\n".join(kept) if len(kept) > 1 else ""


def _route_prefix(app_name: str, function: str, web: WebEndpoint, dev: bool) -> str:
    if web.route_prefix is not None:
        return web.route_prefix + ("-dev" if dev else "")
    return f"/{app_name}{'-dev' if dev else ''}/{function}"


def serve_app_prefix(app_name: str, *, dev: bool = False) -> str:
    """How the Serve applications of an app's web functions are named (their replica
    actors are ``ServeReplica:<that name>...``)."""
    return f"rayfn{'-dev' if dev else ''}:{app_name}:"


def _serve_name(app_name: str, function: str, dev: bool) -> str:
    return serve_app_prefix(app_name, dev=dev) + function


def _serve_apps_of(app_name: str, dev: bool) -> list[str]:
    prefix = serve_app_prefix(app_name, dev=dev)
    return [n for n in serve.status().applications if n.startswith(prefix)]
