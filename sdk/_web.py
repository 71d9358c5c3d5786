"""Web endpoints, Modal style: ``@asgi_app()`` serves the ASGI app a function returns,
``@fastapi_endpoint()`` serves one function as an endpoint. Put them under
``@app.function()``; deploys host them on Ray Serve at ``/<app>/<function>``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from rayfn._checks import marker
from rayfn._unsupported import refuse
from rayfn.exception import InvalidError
from rayfn.runtime.records import WebEndpoint

F = TypeVar("F", bound=Callable[..., Any])

WEB_ATTRIBUTE = "__rayfn_web__"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Matched whole (fullmatch): "$" would also accept a prefix ending in a newline.
_PREFIX_RE = re.compile(r"(/[A-Za-z0-9._~-]+)+")
# The job API's paths (and /ui, the console's): no web function may be served there, or
# it would take the API's requests, and their Authorization headers.
RESERVED_PREFIXES = ("/v1", "/healthz", "/docs", "/redoc", "/openapi.json", "/ui")


def check_route_free(prefix: str, where: str) -> None:
    """Refuse a web function's route prefix that overlaps the job API's paths.

    Raises:
        InvalidError: ``prefix`` is or lies under one of ``RESERVED_PREFIXES``.
    """
    for reserved in RESERVED_PREFIXES:
        if prefix == reserved or prefix.startswith(reserved + "/"):
            raise InvalidError(
                f"{where} would be served at {prefix}, under {reserved}, which the rayfn "
                f"job API reserves ({', '.join(RESERVED_PREFIXES)}): give it another "
                "label= or route_prefix=, or the app another name."
            )


def asgi_app(
    *,
    label: str | None = None,
    route_prefix: str | None = None,
    custom_domains: Any = None,
    requires_proxy_auth: bool = False,
) -> Callable[[F], F]:
    """Serve the ASGI app (FastAPI, Starlette...) that the decorated function returns.

    Example:
        >>> @app.function()
        ... @rayfn.asgi_app()
        ... def fastapi_app():
        ...     return web_app

    Args:
        label: serve at ``/<label>`` instead of ``/<app>/<function>``.
        route_prefix: serve at this path prefix instead (e.g. ``"/jobs"``).
    """
    return _app_server("asgi", label, route_prefix, custom_domains, requires_proxy_auth)


def wsgi_app(
    *,
    label: str | None = None,
    route_prefix: str | None = None,
    custom_domains: Any = None,
    requires_proxy_auth: bool = False,
) -> Callable[[F], F]:
    """Serve the WSGI app (Flask, Django...) that the decorated function returns; it
    runs in a thread pool of its replica (a2wsgi).

    Example:
        >>> @app.function(image=rayfn.Image.debian_slim().pip_install("flask"))
        ... @rayfn.wsgi_app()
        ... def flask_app():
        ...     return Flask(__name__)
    """
    return _app_server("wsgi", label, route_prefix, custom_domains, requires_proxy_auth)


def web_server(
    port: int,
    *,
    startup_timeout: float = 5.0,
    label: str | None = None,
    route_prefix: str | None = None,
    custom_domains: Any = None,
    requires_proxy_auth: bool = False,
) -> Callable[[F], F]:
    """Serve whatever HTTP server the decorated function starts (a subprocess, a
    thread) listening on ``port`` of its node: its replica forwards each request there.
    The port must be free on the node, and not Ray Serve's own (``RAYFN_HTTP_PORT``,
    8000 by default).

    Example:
        >>> @app.function()
        ... @rayfn.web_server(8080)
        ... def files():
        ...     subprocess.Popen("python -m http.server 8080", shell=True)
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidError(f"web_server port must be a whole number 1-65535, got {port!r}.")
    if isinstance(startup_timeout, bool) or not isinstance(startup_timeout, int | float):
        raise InvalidError(f"startup_timeout must be seconds, got {startup_timeout!r}.")
    if not 0 < startup_timeout <= 3600:
        raise InvalidError(f"startup_timeout must be 0 to 3600 s, got {startup_timeout!r}.")
    _refuse_modal_only(custom_domains, requires_proxy_auth)
    prefix = _prefix(label, route_prefix)
    return _mark(
        WebEndpoint(
            "server",
            route_prefix=prefix,
            port=port,
            startup_timeout=float(startup_timeout),
            requires_auth=requires_proxy_auth,
        )
    )


def fastapi_endpoint(
    *,
    method: str = "GET",
    label: str | None = None,
    route_prefix: str | None = None,
    docs: bool = False,
    custom_domains: Any = None,
    requires_proxy_auth: bool = False,
) -> Callable[[F], F]:
    """Serve the decorated function as one HTTP endpoint; its parameters are read as
    FastAPI reads them (query parameters, or a JSON body for pydantic models).

    Example:
        >>> @app.function()
        ... @rayfn.fastapi_endpoint(method="POST")
        ... def square(x: int):
        ...     return {"square": x * x}
    """
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise InvalidError(f"method must be one of {', '.join(_METHODS)}, got {method!r}.")
    if not isinstance(docs, bool):
        raise InvalidError(f"docs must be True or False, got {docs!r}.")
    _refuse_modal_only(custom_domains, requires_proxy_auth)
    prefix = _prefix(label, route_prefix)
    return _mark(
        WebEndpoint(
            "fastapi",
            method=method.upper(),
            route_prefix=prefix,
            docs=docs,
            requires_auth=requires_proxy_auth,
        )
    )


def _app_server(
    kind: str,
    label: str | None,
    route_prefix: str | None,
    custom_domains: Any,
    requires_proxy_auth: bool,
) -> Callable[[F], F]:
    """The mark of a function returning an ``asgi`` or ``wsgi`` app, options checked."""
    _refuse_modal_only(custom_domains, requires_proxy_auth)
    prefix = _prefix(label, route_prefix)
    return _mark(WebEndpoint(kind, route_prefix=prefix, requires_auth=requires_proxy_auth))


def _refuse_modal_only(custom_domains: Any, requires_proxy_auth: bool) -> None:
    if custom_domains:
        refuse("custom_domains", "point your domain at Ray Serve's HTTP address")
    if not isinstance(requires_proxy_auth, bool):
        raise InvalidError(
            f"requires_proxy_auth must be True or False, got {requires_proxy_auth!r}."
        )


def _mark(endpoint: WebEndpoint) -> Callable[[F], F]:
    return marker(WEB_ATTRIBUTE, endpoint, "Web endpoint decorators take functions")


def _prefix(label: str | None, route_prefix: str | None) -> str | None:
    if label is not None and route_prefix is not None:
        raise InvalidError("Give label or route_prefix, not both.")
    prefix = f"/{label}" if label is not None else route_prefix
    if prefix is not None and (not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix)):
        raise InvalidError(
            f"Invalid route prefix {prefix!r}: use a path like '/jobs' or '/team/jobs' "
            "(letters, digits, '.', '_', '~', '-'; no trailing slash)."
        )
    if prefix is not None:
        check_route_free(prefix, "This web endpoint")
    return prefix


def web_endpoint_of(fn: Callable[..., Any]) -> WebEndpoint | None:
    return getattr(fn, WEB_ATTRIBUTE, None)
