"""Users' web functions (``@asgi_app``, ``@fastapi_endpoint``) on Ray Serve: one Serve
application per function, ``rayfn:<app>:<function>``, routed at ``/<app>/<function>``
unless its decorator set a route. Serve routes by longest prefix, so users' apps win
over the job API's catch-all ``/`` (``rayfn.serve``).

Imported only where web functions are deployed or looked up: a process that only
submits work never loads Ray Serve. The replica builds its ASGI app inside the replica
(``__serve_build_asgi_app__``), so nothing but pickled code crosses from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx
import ray
from ray import serve
from starlette.types import ASGIApp, Receive, Scope, Send

from rayfn._function import Function
from rayfn._serialization import dumps_code
from rayfn._web import check_route_free
from rayfn.config import settings
from rayfn.exception import InvalidError
from rayfn.runtime import _ray_compat as ray_compat
from rayfn.runtime import kv
from rayfn.runtime.constants import AT_ROOT_HEADER, KV_HTTP_BASE_URL, KV_WEB_HOST_PREFIX
from rayfn.runtime.records import AppInfo, FunctionOptions, FunctionSpec, WebEndpoint
from rayfn.runtime.resources import fits_some_node, held_resources

logger = logging.getLogger(__name__)
_WAIT_POLL_S = 0.1  # how often a deploy looks whether its web functions run
# Serve logs each of our calls at INFO ("Connecting to existing Serve app..."); the CLI
# prints what matters itself.
logging.getLogger("ray.serve").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Endpoint:
    function: str
    url: str


@serve.ingress()
class WebFunction:
    """Hosts one web function (``WebEndpoint.kind`` says which kind)."""

    def __init__(
        self, code: bytes, endpoint: WebEndpoint, name: str, token_sha256: str | None = None
    ) -> None:
        from rayfn.runtime.containers import build_instance
        from rayfn.runtime.executor import loads_code

        fn, _ = loads_code(code)  # imported here from the user's file, if it has one
        if isinstance(fn, type):  # a web method of an @app.cls class: this is its container
            fn = getattr(build_instance(fn), name.rsplit(".", 1)[1])
        self._fn = fn
        self._endpoint = endpoint
        self._token_sha256 = token_sha256  # requires_proxy_auth: the job API's token
        if endpoint.kind == "server":
            _start_server(self._fn, endpoint)

    def __del__(self) -> None:
        """Serve stops the replica: a ``@web_server``'s processes go with it, as a
        Modal container's do, so the port is free for the next deploy."""
        if self._endpoint.kind == "server":
            _stop_children()

    def __serve_build_asgi_app__(self) -> Any:
        app = self._app()
        return _Gate(app, self._token_sha256) if self._token_sha256 else app

    def _app(self) -> Any:
        endpoint = self._endpoint
        if endpoint.kind == "asgi":
            return _BarePrefixIsRoot(self._fn())
        if endpoint.kind == "wsgi":
            from a2wsgi import WSGIMiddleware

            return _BarePrefixIsRoot(cast(ASGIApp, WSGIMiddleware(self._fn())))
        if endpoint.kind == "server":
            from rayfn.runtime.http_forward import Forward

            assert endpoint.port is not None
            return _BarePrefixIsRoot(Forward(endpoint.port))
        from fastapi import FastAPI

        # Its /docs and /openapi.json only with docs=True, as Modal serves them.
        docs = endpoint.docs
        app = FastAPI() if docs else FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        app.add_api_route("/", self._fn, methods=[endpoint.method])
        return _BarePrefixIsRoot(app)


def _stop_children() -> None:
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=3)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _start_server(start: Any, endpoint: WebEndpoint) -> None:
    """Run a ``@web_server`` function and wait for its server to listen.

    Raises:
        RuntimeError: the port is taken already, or nothing listens on it in time;
            the deploy fails saying so.
    """
    from rayfn.runtime.http_forward import is_listening, wait_listening

    port = endpoint.port
    assert port is not None
    if is_listening(port):
        raise RuntimeError(
            f"@web_server({port}): port {port} is in use on this node already (by Ray "
            "Serve itself if it is RAYFN_HTTP_PORT, 8000 by default); use another port."
        )
    start()
    if not wait_listening(port, endpoint.startup_timeout):
        raise RuntimeError(
            f"@web_server({port}): nothing listened on port {port} within "
            f"{endpoint.startup_timeout:g} s of the function's start (startup_timeout=)."
        )


class _Gate:
    """``requires_proxy_auth=True``: only requests with the job API's bearer token
    (``Authorization: Bearer <RAYFN_API_TOKEN>``, or Modal's ``Modal-Secret`` header
    holding it) reach the app; others get 401."""

    def __init__(self, app: ASGIApp, token_sha256: str) -> None:
        self.app = app
        self._digest = bytes.fromhex(token_sha256)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self._allowed(dict(scope["headers"])):
            body = b'{"error": "unauthorized", "message": "This endpoint needs the token."}'
            headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _allowed(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"modal-secret")
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and token:
            given = token.strip()
        if not given:
            return False
        return hmac.compare_digest(hashlib.sha256(given).digest(), self._digest)


class _BarePrefixIsRoot:
    """Answer ``/<app>/<function>`` itself, as Modal's endpoint URLs do, instead of
    FastAPI's redirect to ``/<app>/<function>/``; and a request the job API handed on
    from the function's own host (``serve/_hosts.py``) as one at the app's root."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            if any(name == AT_ROOT_HEADER for name, _ in scope["headers"]):
                path = scope["path"][len(root) :] if scope["path"].startswith(root) else "/"
                scope = {**scope, "root_path": "", "path": path or "/", "raw_path": None}
            elif scope["path"] == root:
                scope = {**scope, "path": scope["path"] + "/", "raw_path": None}
        await self.app(scope, receive, send)


def deploy_web_functions(
    app_name: str,
    functions: Mapping[str, Function | FunctionSpec],
    *,
    deployed: AppInfo | None = None,
    dev: bool = False,
) -> list[Endpoint]:
    """Run each web function of an app on Serve, replacing what the app ran there
    before, in the runtime envs ``deployed`` gave it; returns their URLs. ``dev``
    (``rayfn serve``) serves under ``/<app>-dev/...`` so it does not collide with the
    deployed app."""
    web = check_routes(app_name, functions, dev=dev)
    if not web:
        return []
    started = not ray_compat.serve_running()
    serve.start(http_options=settings().serve_http_options)
    # Where Serve answers is what it was first started with, not what this process asks.
    if started or kv.get(KV_HTTP_BASE_URL) is None:
        kv.put(KV_HTTP_BASE_URL, settings().http_base_url.encode())
    stale = set(_serve_apps_of(app_name, dev)) - {_serve_name(app_name, n, dev) for n in web}
    for name in stale:
        serve.delete(name)
    _forget_hosts(stale)
    endpoints = []
    waiting: dict[str, str] = {}  # the functions to wait for, with their route prefix
    for name, function in web.items():
        assert function.web is not None
        code, options = _code_and_options(function, deployed.name if deployed else app_name)
        prefix = _route_prefix(app_name, name, function.web, dev)
        # What its calls would ask of Ray (memory=, gpu=), but an HTTP handler mostly
        # waits: it holds no CPU unless the function asks for one.
        cluster = ray.cluster_resources() if options.gpu is not None else None  # fallbacks
        # A replica is the container: what one call asks for, whole.
        whole = dataclasses.replace(options, concurrent_inputs=1)
        actor_options = {**whole.ray_task_options(cluster), "num_cpus": options.cpu or 0.0}
        runtime_env = deployed.runtime_env_of(name) if deployed is not None else None
        if runtime_env is not None:
            actor_options["runtime_env"] = runtime_env
        serving: dict[str, Any] = {}
        if options.concurrent_inputs > 1:  # @concurrent(max_inputs=N): requests at once
            serving["max_ongoing_requests"] = options.concurrent_inputs
        deployment = serve.deployment(
            name=f"{app_name}.{name}", ray_actor_options=actor_options, **serving
        )(WebFunction)
        # Wait for the replica to run, unless no node can hold one: that would be forever.
        needs = held_resources(actor_options)
        wait = fits_some_node(needs, _node_totals())
        if not wait:
            logger.warning(
                "%s.%s waits for a node with %s: no node of the cluster has that now",
                app_name,
                name,
                ", ".join(f"{amount:g} {resource}" for resource, amount in needs.items()),
            )
        try:  # every function's replicas start together; waited for below
            ray_compat.serve_run(
                deployment.bind(code, function.web, name, _token_digest(function.web)),
                name=_serve_name(app_name, name, dev),
                route_prefix=prefix,
                wait=False,
            )
        except Exception as exc:
            raise _failed(app_name, name, prefix, dev, str(exc)) from None
        if wait:
            waiting[name] = prefix
        # Its own host too (serve/_hosts.py): the label says which route prefix it is.
        host = json.dumps({"prefix": prefix, "serve_app": _serve_name(app_name, name, dev)})
        kv.put(KV_WEB_HOST_PREFIX + host_label(app_name, name, function.web, dev), host.encode())
        endpoints.append(Endpoint(name, web_url(app_name, name, function.web, dev=dev)))
    _wait_running(app_name, waiting, dev)
    return endpoints


def _wait_running(app_name: str, waiting: dict[str, str], dev: bool) -> None:
    """Return once the Serve applications of these web functions (name -> route
    prefix) run.

    Raises:
        InvalidError: one failed to deploy (its replica's error, the user's frames
            as a note).
    """
    left = {_serve_name(app_name, name, dev): (name, prefix) for name, prefix in waiting.items()}
    while left:
        applications = serve.status().applications
        for serve_name, (name, prefix) in list(left.items()):
            status = applications.get(serve_name)
            if status is None:
                continue
            if status.status == "RUNNING":
                del left[serve_name]
            elif status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
                raise _failed(app_name, name, prefix, dev, status.message)
        if left:
            time.sleep(_WAIT_POLL_S)


def _failed(app_name: str, name: str, prefix: str, dev: bool, why: str) -> InvalidError:
    summary, frames = _why_it_failed(_serve_name(app_name, name, dev)) or (why, "")
    failed = InvalidError(f"Serving {app_name}.{name} at {prefix} failed: {summary}")
    if frames:
        failed.add_note(frames)  # the user's traceback, from the replica
    return failed


def _token_digest(web: WebEndpoint) -> str | None:
    """What a ``requires_proxy_auth`` endpoint checks callers' tokens against."""
    if not web.requires_auth:
        return None
    token = settings().api_token
    assert token is not None  # check_routes refused it otherwise
    return hashlib.sha256(token.get_secret_value().encode()).hexdigest()


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
        if function.web.requires_auth and settings().api_token is None:
            raise InvalidError(
                f"Web function {app_name}.{name} has requires_proxy_auth=True: set "
                "RAYFN_API_TOKEN where it is deployed; callers then send "
                "`Authorization: Bearer <token>`."
            )
    return web


def web_url(app_name: str, function: str, web: WebEndpoint, *, dev: bool = False) -> str:
    """Where a web function is (or will be) served: on the cluster's Serve, as its
    web functions were first deployed, else as this process's settings say."""
    return base_url() + _route_prefix(app_name, function, web, dev)


def base_url() -> str:
    from rayfn import _connection

    _connection.connect()
    found = kv.get(KV_HTTP_BASE_URL)
    return found.decode() if found is not None else settings().http_base_url


def delete_web_functions(app_name: str, *, dev: bool = False) -> list[str]:
    """Remove every Serve application of an app's web functions, and their hosts."""
    names = _serve_apps_of(app_name, dev)
    for name in names:
        serve.delete(name)
    _forget_hosts(set(names))
    return names


def host_label(app_name: str, function: str, web: WebEndpoint, dev: bool = False) -> str:
    """The host label a web function answers at the root of (``<label>.localhost``):
    ``<app>-<function>``, or its ``label=``/route, a DNS label (lower case, 63 at most)."""
    route = web.route_prefix.strip("/") if web.route_prefix else f"{app_name}-{function}"
    label = re.sub(r"[^a-z0-9]+", "-", route.lower()).strip("-") + ("-dev" if dev else "")
    if len(label) > 63:
        digest = hashlib.sha256(label.encode()).hexdigest()[:8]
        label = f"{label[:54].rstrip('-')}-{digest}"
    return label


def web_origin(app_name: str, function: str, web: WebEndpoint, *, dev: bool = False) -> str:
    """The origin whose root is the web function's (``http://<label>.localhost:8000``
    on a cluster served on loopback; ``<label>.<host>`` under a host name)."""
    base = httpx.URL(base_url())
    host = "localhost" if base.host in ("127.0.0.1", "0.0.0.0", "localhost") else base.host
    port = f":{base.port}" if base.port else ""
    return f"{base.scheme}://{host_label(app_name, function, web, dev)}.{host}{port}"


def _forget_hosts(serve_apps: set[str]) -> None:
    """Drop the host labels of these Serve applications (web functions gone)."""
    if not serve_apps:
        return
    for key in kv.keys(KV_WEB_HOST_PREFIX):
        found = kv.get(key)
        if found is not None and json.loads(found).get("serve_app") in serve_apps:
            kv.delete(key)


def _code_and_options(
    function: Function | FunctionSpec, deployment: str
) -> tuple[bytes, FunctionOptions]:
    if isinstance(function, FunctionSpec):  # as deployed before: a deploy rolled back
        return function.code, function.options
    raw, options = function.definition()
    return dumps_code(function.code or raw, deployment), options  # a method: its class


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
