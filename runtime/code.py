"""Where deployed code (and secrets) live: the GCS key-value store, one entry per app version and
function, written by the control actor at deploy and read by each worker once.

Tasks carry only the entry's key (a string), never an ``ObjectRef`` to the code: a ref
inside a task's arguments makes every call pay Ray's borrowing protocol (measured:
about 30% of raw task throughput on 2 cores).
"""

from __future__ import annotations

import hashlib
import json

from rayfn.runtime import kv
from rayfn.runtime.constants import KV_CODE_PREFIX, KV_SECRET_PREFIX


def app_digest(app: str) -> str:
    """App names are free text; a digest keeps one app's prefix from matching another's."""
    return hashlib.sha256(app.encode()).hexdigest()[:24]


def _app_prefix(app: str) -> str:
    return f"{KV_CODE_PREFIX}{app_digest(app)}:"


def code_key(app: str, version: int, function: str) -> str:
    """The key of one function's pickled code in one version of an app."""
    return f"{_app_prefix(app)}{version}:{function}"


def put_code(app: str, version: int, code: dict[str, bytes]) -> None:
    """Store the pickled code of each function of ``app`` at ``version``."""
    for function, blob in code.items():
        key = code_key(app, version, function)
        kv.put(key, blob)


def get_code(key: str) -> bytes | None:
    return kv.get(key)


def drop_code(app: str, below_version: int | None = None) -> None:
    """Delete the code of ``app``'s versions under ``below_version`` (None: all)."""
    prefix = _app_prefix(app)
    for key in kv.keys(prefix):
        version = int(key[len(prefix) :].split(":", 1)[0])
        if below_version is None or version < below_version:
            kv.delete(key)


def put_secret(name: str, values: dict[str, str]) -> None:
    blob = json.dumps(values).encode()
    kv.put(KV_SECRET_PREFIX + name, blob)


def get_secret(name: str) -> dict[str, str] | None:
    blob = kv.get(KV_SECRET_PREFIX + name)
    return None if blob is None else dict(json.loads(blob))


def delete_secret(name: str) -> bool:
    return bool(kv.delete(KV_SECRET_PREFIX + name))


def secret_names() -> list[str]:
    return sorted(key[len(KV_SECRET_PREFIX) :] for key in kv.keys(KV_SECRET_PREFIX))
