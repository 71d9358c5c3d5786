"""Each web function at the root of an origin of its own, as Modal serves them: a
request for ``http://<host label>.<anything>/x`` (say ``my-app-page.localhost``) is the
web function's ``/x``, whatever path it asks for.

Ray Serve routes by path alone, and the job API holds ``/``: so requests for a web
function's own host arrive here first. This hands them to the function's route
prefix on the same Serve proxy, marked ``x-rayfn-at-root`` so the function's replica
shows the app its requests at its root (links, redirects and ``fetch("/x")`` of its
pages stay on its host). Host labels are written to the GCS key-value store when web
functions are deployed (``rayfn._web_hosting``), one key each.
"""

from __future__ import annotations

import ipaddress
import json
import time

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from rayfn.runtime import _ray_compat as ray_compat
from rayfn.runtime.constants import AT_ROOT_HEADER, KV_WEB_HOST_PREFIX, NAMESPACE
from rayfn.runtime.http_forward import forward

# How long a looked-up host label (or its absence) is trusted.
_FRESH_S = 2.0


class HostRouter:
    """In front of the job API: requests for a web function's own host go to it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._prefixes: dict[str, tuple[str | None, float]] = {}
        self._clients: dict[int, httpx.AsyncClient] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        prefix = self._prefix_of(scope) if scope["type"] == "http" else None
        if prefix is None:
            await self.app(scope, receive, send)
            return
        port = scope["server"][1] if scope.get("server") else 80
        client = self._clients.get(port)
        if client is None:
            base = f"http://127.0.0.1:{port}"
            client = self._clients[port] = httpx.AsyncClient(base_url=base, timeout=None)
        path = prefix + scope["path"]
        await forward(client, scope, receive, send, path, ((AT_ROOT_HEADER, b"1"),))

    def _prefix_of(self, scope: Scope) -> str | None:
        headers = dict(scope["headers"])
        if AT_ROOT_HEADER in headers:  # handed on once already: never loop
            return None
        label = host_label(headers.get(b"host", b"").decode("latin-1"))
        if label is None:
            return None
        now = time.monotonic()
        known = self._prefixes.get(label)
        if known is None or now - known[1] > _FRESH_S:
            found = ray_compat.kv_get(KV_WEB_HOST_PREFIX + label, namespace=NAMESPACE)
            known = (json.loads(found)["prefix"] if found is not None else None, now)
            self._prefixes[label] = known
        return known[0]


def host_label(host: str) -> str | None:
    """The first label of a host name with several (``app-page`` of
    ``app-page.localhost:8000``); None for an IP address or a single-label host."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    try:
        ipaddress.ip_address(name.strip("[]"))
        return None
    except ValueError:
        pass
    label, dot, _ = name.partition(".")
    return label.lower() if dot and label else None
