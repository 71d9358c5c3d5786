"""Configuration: keyword arguments first, then ``RAYFN_*`` environment variables
(this one settings class), then the defaults in ``rayfn.runtime.constants``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rayfn.runtime.constants import DEFAULT_RESULT_TTL_S


class Settings(BaseSettings):
    """rayfn's settings, read from the environment each time ``settings()`` is called."""

    model_config = SettingsConfigDict(env_prefix="RAYFN_", extra="ignore")

    # Where rayfn keeps its local cluster's address, pid, logs and auth token.
    home: Path = Field(default_factory=lambda: Path.home() / ".rayfn")
    # Default result_ttl of functions that do not set one, in seconds.
    result_ttl: float = Field(default=DEFAULT_RESULT_TTL_S, gt=0)


def settings() -> Settings:
    return Settings()
