"""rayfn's settings: keyword arguments first, then ``RAYFN_*`` environment variables
(this one settings class), then the defaults in ``rayfn.runtime.constants``.

Example:
    >>> rayfn.config.settings().http_base_url
    'http://127.0.0.1:8000'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from rayfn.exception import InvalidError
from rayfn.runtime.constants import (
    DEFAULT_CLIENT_GRACE_S,
    DEFAULT_HTTP_BODY_TIMEOUT_S,
    DEFAULT_HTTP_HOST,
    DEFAULT_HTTP_MAX_BODY,
    DEFAULT_HTTP_MAX_RESULT,
    DEFAULT_HTTP_PORT,
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_RESULT_TTL_S,
)


class Settings(BaseSettings):
    """rayfn's settings, read from the environment each time ``settings()`` is called."""

    model_config = SettingsConfigDict(env_prefix="RAYFN_", extra="ignore")

    # Where rayfn keeps its local cluster's address, pid, logs and auth token.
    home: Path = Field(default_factory=lambda: Path.home() / ".rayfn")
    # A call whose result is larger fails with SerializationError (read at deploy time
    # and sent to the workers with each call).
    max_result_bytes: int = Field(default=DEFAULT_MAX_RESULT_BYTES, gt=0)
    # Default result_ttl of functions that do not set one, in seconds.
    result_ttl: float = Field(default=DEFAULT_RESULT_TTL_S, gt=0, allow_inf_nan=False)
    # Where Ray Serve listens for rayfn's HTTP side (the job API and web functions).
    http_host: str = DEFAULT_HTTP_HOST
    http_port: int = Field(default=DEFAULT_HTTP_PORT, ge=1, le=65535)
    # Request bodies over this many bytes get 413 from the job API.
    http_max_body: int = Field(default=DEFAULT_HTTP_MAX_BODY, gt=0)
    # Results whose JSON answer would be over this many bytes get 413 from the job API.
    http_max_result: int = Field(default=DEFAULT_HTTP_MAX_RESULT, gt=0)
    # Seconds the job API waits for each piece of a request body before answering 408.
    http_body_timeout: float = Field(
        default=DEFAULT_HTTP_BODY_TIMEOUT_S, gt=0, le=3600, allow_inf_nan=False
    )
    # Seconds an ephemeral app (`rayfn run`, `rayfn serve`, `app.run()`) outlives its
    # client's last heartbeat before the cluster stops it and cancels its calls.
    client_grace: float = Field(default=DEFAULT_CLIENT_GRACE_S, ge=1, le=86400, allow_inf_nan=False)
    # Bearer token the job API requires on every route but /healthz (None: no token).
    api_token: SecretStr | None = None

    @property
    def http_base_url(self) -> str:
        """Where rayfn's HTTP side answers."""
        return f"http://{self.http_host}:{self.http_port}"

    @property
    def serve_http_options(self) -> dict[str, Any]:
        """Ray Serve's ``http_options`` for rayfn's HTTP side (``serve.start``)."""
        return {"host": self.http_host, "port": self.http_port}


def settings() -> Settings:
    """The settings now in force.

    Raises:
        InvalidError: a ``RAYFN_*`` variable has a value rayfn cannot use (one line
            naming it, never pydantic's report).
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise InvalidError(f"Bad rayfn setting: {problems}.") from None


def _problem(error: ErrorDetails) -> str:
    field = ".".join(str(part) for part in error.get("loc", ())) or "?"
    value = error.get("input")
    shown = "(hidden)" if field == "api_token" else repr(value)
    return f"RAYFN_{field.upper()}={shown}: {error.get('msg', 'invalid').lower()}"
