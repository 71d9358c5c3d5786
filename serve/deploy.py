"""Putting rayfn's HTTP side on Ray Serve: the job API and users' web functions.

Serve application names: ``rayfn-api`` for the job API (route ``/``), and
``rayfn:<app>:<function>`` for each web function (route ``/<app>/<function>`` unless
its decorator set one). Serve routes by longest prefix, so users' apps win over the
API's catch-all ``/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ray import serve

from rayfn._config import settings
from rayfn._function import Function
from rayfn._serialization import dumps_function
from rayfn.exception import InvalidError
from rayfn.runtime.records import FunctionOptions, WebEndpoint
from rayfn.serve._guard import token_digest
from rayfn.serve._hosting import JobAPI, WebFunction

logger = logging.getLogger(__name__)
# Serve logs each of our calls at INFO ("Connecting to existing Serve app..."); the CLI
# prints what matters itself.
logging.getLogger("ray.serve").setLevel(logging.WARNING)

API_APP_NAME = "rayfn-api"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
    """Run the job API on Serve (once per cluster); returns its base URL."""
    start_http()
    if API_APP_NAME not in serve.status().applications:
        s = settings()
        token = s.api_token.get_secret_value() if s.api_token else None
        if token is None and s.http_host not in _LOOPBACK:
            logger.warning(
                "The rayfn job API listens on %s without a token: anyone who reaches it "
                "can run your functions. Set RAYFN_API_TOKEN.",
                s.http_host,
            )
        deployment = serve.deployment(name="JobAPI", ray_actor_options={"num_cpus": 0})(JobAPI)
        serve.run(
            deployment.bind(token and token_digest(token), s.http_max_body),
            name=API_APP_NAME,
            route_prefix="/",
            blocking=False,
        )
    return base_url()


def deploy_web_functions(
    app_name: str,
    functions: dict[str, Function],
    *,
    runtime_env: dict[str, Any] | None = None,
    dev: bool = False,
) -> list[Endpoint]:
    """Run each web function of an app on Serve, replacing what the app ran there
    before; returns their URLs. ``dev`` (``rayfn serve``) serves under
    ``/<app>-dev/...`` so it does not collide with the deployed app."""
    web = {name: f for name, f in functions.items() if f.web is not None}
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
        # An HTTP handler mostly waits: it holds no CPU unless the function asks for one.
        actor_options: dict[str, Any] = {"num_cpus": options.cpu or 0.0}
        if runtime_env is not None:
            actor_options["runtime_env"] = runtime_env
        deployment = serve.deployment(name=f"{app_name}.{name}", ray_actor_options=actor_options)(
            WebFunction
        )
        try:
            serve.run(
                deployment.bind(code, function.web.kind, function.web.method),
                name=_serve_name(app_name, name, dev),
                route_prefix=prefix,
                blocking=False,
            )
        except Exception as exc:
            raise InvalidError(f"Serving {app_name}.{name} at {prefix} failed: {exc}") from exc
        endpoints.append(Endpoint(name, base_url() + prefix))
    return endpoints


def web_url(app_name: str, function: str, web: WebEndpoint, *, dev: bool = False) -> str:
    """Where a web function is (or will be) served."""
    return base_url() + _route_prefix(app_name, function, web, dev)


def delete_web_functions(app_name: str, *, dev: bool = False) -> list[str]:
    """Remove every Serve application of an app's web functions."""
    names = _serve_apps_of(app_name, dev)
    for name in names:
        serve.delete(name)
    return names


def _code_and_options(function: Function) -> tuple[bytes, FunctionOptions]:
    raw, options = function.definition()
    return dumps_function(raw), options


def _route_prefix(app_name: str, function: str, web: WebEndpoint, dev: bool) -> str:
    if web.route_prefix is not None:
        return web.route_prefix + ("-dev" if dev else "")
    return f"/{app_name}{'-dev' if dev else ''}/{function}"


def _serve_name(app_name: str, function: str, dev: bool) -> str:
    return f"rayfn{'-dev' if dev else ''}:{app_name}:{function}"


def _serve_apps_of(app_name: str, dev: bool) -> list[str]:
    prefix = f"rayfn{'-dev' if dev else ''}:{app_name}:"
    return [n for n in serve.status().applications if n.startswith(prefix)]
