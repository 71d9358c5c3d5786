"""The job API's Ray Serve deployment; it builds its ASGI app inside the replica
(``__serve_build_asgi_app__``). Users' web functions have their own
(``rayfn._web_hosting``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ray import serve

from rayfn.serve._hosts import HostRouter
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
        # Requests for a web function's own host go to it before the API sees them.
        return HostRouter(build_api(**asdict(self._config)))
