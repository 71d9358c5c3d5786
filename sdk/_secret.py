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

from rayfn._checks import check_name
from rayfn.exception import InvalidError

# Matched whole (fullmatch): "$" would also accept a key ending in a newline.
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Secret:
    """A set of environment variables for a function's calls."""

    def __init__(
        self, name: str, values: dict[str, str] | None = None, required_keys: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self._values = values  # set for from_dict: uploaded at deploy
        self.required_keys = required_keys  # checked at deploy

    @classmethod
    def from_name(
        cls,
        name: str,
        *,
        environment_name: str | None = None,
        required_keys: Sequence[str] = (),
    ) -> Secret:
        """The secret created with ``rayfn secret create NAME KEY=VALUE ...``; checked
        at deploy, with ``required_keys`` it must have. ``environment_name`` is
        accepted: a rayfn cluster has one environment."""
        if isinstance(required_keys, str) or not all(isinstance(k, str) for k in required_keys):
            raise InvalidError(f"required_keys must be a list of key names, got {required_keys!r}.")
        return cls(check_name("secret", name), required_keys=tuple(required_keys))

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


def required_keys(secrets: Sequence[Secret]) -> dict[str, set[str]]:
    """The keys each named secret among ``secrets`` must have."""
    wanted: dict[str, set[str]] = {}
    for secret in secrets:
        wanted.setdefault(secret.name, set()).update(secret.required_keys)
    return wanted


def inline_secrets(secrets: Sequence[Secret]) -> dict[str, dict[str, str]]:
    """The values of the ``from_dict`` secrets among ``secrets``, by name, to upload."""
    return {x.name: x.inline_values for x in secrets if x.inline_values is not None}


def check_secret_values(env: object) -> dict[str, str]:
    if not isinstance(env, dict) or not env:
        raise InvalidError("A secret is a non-empty dict of environment variable names to strings.")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_RE.fullmatch(key):
            raise InvalidError(f"Secret keys must be environment variable names, got {key!r}.")
        if not isinstance(value, str):
            # The key, never the value, goes in the message.
            raise InvalidError(f"The value of secret key {key!r} must be a string.")
    return dict(env)
