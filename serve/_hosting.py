"""The Ray Serve deployments rayfn runs: the job API, and users' web functions. Each
builds its ASGI app inside the replica (``__serve_build_asgi_app__``), so nothing but
pickled code crosses from the deploying process."""

from __future__ import annotations

from typing import Any

import ray
from fastapi import FastAPI
from ray import serve

from rayfn.serve.api import build_api


@serve.ingress()
class JobAPI:
    """Hosts the built-in job API."""

    def __init__(self, token_sha256: str | None, max_body: int) -> None:
        self._token_sha256 = token_sha256
        self._max_body = max_body

    def __serve_build_asgi_app__(self) -> Any:
        return build_api(token_sha256=self._token_sha256, max_body=self._max_body)


@serve.ingress()
class WebFunction:
    """Hosts one ``@asgi_app`` or ``@fastapi_endpoint`` function."""

    def __init__(self, code: bytes, kind: str, method: str) -> None:
        self._fn = ray.cloudpickle.loads(code)
        self._kind = kind
        self._method = method

    def __serve_build_asgi_app__(self) -> Any:
        if self._kind == "asgi":
            return _BarePrefixIsRoot(self._fn())
        app = FastAPI()
        app.add_api_route("/", self._fn, methods=[self._method])
        return _BarePrefixIsRoot(app)


class _BarePrefixIsRoot:
    """Answer ``/<app>/<function>`` itself, as Modal's endpoint URLs do, instead of
    FastAPI's redirect to ``/<app>/<function>/``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == scope.get("root_path"):
            scope = {**scope, "path": scope["path"] + "/", "raw_path": None}
        await self.app(scope, receive, send)
