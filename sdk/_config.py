"""Configuration: keyword arguments first, then ``RAYFN_*`` environment variables
(this one settings class), then the defaults in ``rayfn.runtime.constants``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from rayfn.runtime.constants import DEFAULT_RESULT_TTL_S


class Settings(BaseSettings):
    """rayfn's settings, read from the environment each time ``settings()`` is called."""

    model_config = SettingsConfigDict(env_prefix="RAYFN_", extra="ignore")

    # Where rayfn keeps its local cluster's address, pid, logs and auth token.
    home: Path = Field(default_factory=lambda: Path.home() / ".rayfn")
    # Default result_ttl of functions that do not set one, in seconds.
    result_ttl: float = Field(default=DEFAULT_RESULT_TTL_S, gt=0)
    # Where Ray Serve listens for rayfn's HTTP side (the job API and web functions).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    # Request bodies over this many bytes get 413 from the job API.
    http_max_body: int = Field(default=16 * 1024 * 1024, gt=0)
    # Bearer token the job API requires on every route but /healthz (None: no token).
    api_token: SecretStr | None = None


def settings() -> Settings:
    return Settings()
