"""The Ray Serve deployments rayfn runs: the job API, and users' web functions. Each
builds its ASGI app inside the replica (``__serve_build_asgi_app__``), so nothing but
pickled code crosses from the deploying process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve

from rayfn.serve.api import build_api


@dataclass(frozen=True)
class ApiConfig:
    """What the job API runs with; a running API whose config differs is redeployed."""

    token_sha256: str | None  # hex SHA-256 of the bearer token, never the token
    max_body: int
    max_result: int
    body_timeout_s: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ApiConfig | None:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return None  # written by another version of rayfn: treat as unknown


@serve.ingress()
class JobAPI:
    """Hosts the built-in job API."""

    def __init__(self, config: ApiConfig) -> None:
        self._config = config

    def __serve_build_asgi_app__(self) -> Any:
        return build_api(**asdict(self._config))


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
