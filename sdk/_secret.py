"""``rayfn.Secret``: environment variables a function gets on the cluster, kept in
the GCS key-value store; values never appear in listings, logs or rayfn's errors.

    rayfn secret create openai OPENAI_API_KEY=sk-...     # a named secret
    @app.function(secrets=[rayfn.Secret.from_name("openai")])
    @app.function(secrets=[rayfn.Secret.from_dict({"MODE": "prod"})])
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

from rayfn.exception import InvalidError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Secret:
    """A set of environment variables for a function's calls."""

    def __init__(self, name: str, values: dict[str, str] | None = None) -> None:
        self.name = name
        self._values = values  # set for from_dict: uploaded at deploy

    @classmethod
    def from_name(cls, name: str) -> Secret:
        """The secret created with ``rayfn secret create NAME KEY=VALUE ...``; checked
        at deploy."""
        return cls(check_secret_name(name))

    @classmethod
    def from_dict(cls, env: dict[str, str]) -> Secret:
        """A secret given here; its values go to the cluster's GCS at deploy."""
        values = check_secret_values(env)
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
        return cls(f"inline-{digest[:24]}", values)

    @property
    def inline_values(self) -> dict[str, str] | None:
        return self._values

    def __repr__(self) -> str:  # never the values
        return f"Secret({self.name!r})"


def inline_secrets(secrets: Sequence[Secret]) -> dict[str, dict[str, str]]:
    """The values of the ``from_dict`` secrets among ``secrets``, by name, to upload."""
    return {x.name: x.inline_values for x in secrets if x.inline_values is not None}


def check_secret_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidError(
            f"Invalid secret name {name!r}: use 1-128 letters, digits, '_', '.' or '-'."
        )
    return name


def check_secret_values(env: object) -> dict[str, str]:
    if not isinstance(env, dict) or not env:
        raise InvalidError("A secret is a non-empty dict of environment variable names to strings.")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_RE.match(key):
            raise InvalidError(f"Secret keys must be environment variable names, got {key!r}.")
        if not isinstance(value, str):
            # The key, never the value, goes in the message.
            raise InvalidError(f"The value of secret key {key!r} must be a string.")
    return dict(env)
