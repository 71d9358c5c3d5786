"""Where deployed code (and secrets) live: the GCS key-value store, one entry per app version and
function, written by the control actor at deploy and read by each worker once.

Tasks carry only the entry's key (a string), never an ``ObjectRef`` to the code: a ref
inside a task's arguments makes every call pay Ray's borrowing protocol (measured:
about 30% of raw task throughput on 2 cores).
"""

from __future__ import annotations

import hashlib
import json

from ray.experimental import internal_kv

from rayfn.runtime.constants import KV_CODE_PREFIX, KV_SECRET_PREFIX, NAMESPACE


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
        internal_kv._internal_kv_put(key, blob, overwrite=True, namespace=NAMESPACE)


def get_code(key: str) -> bytes | None:
    return internal_kv._internal_kv_get(key, namespace=NAMESPACE)


def drop_code(app: str, below_version: int | None = None) -> None:
    """Delete the code of ``app``'s versions under ``below_version`` (None: all)."""
    prefix = _app_prefix(app)
    for key in internal_kv._internal_kv_list(prefix, namespace=NAMESPACE):
        text = key.decode() if isinstance(key, bytes) else key
        version = int(text[len(prefix) :].split(":", 1)[0])
        if below_version is None or version < below_version:
            internal_kv._internal_kv_del(key, namespace=NAMESPACE)


def put_secret(name: str, values: dict[str, str]) -> None:
    blob = json.dumps(values).encode()
    internal_kv._internal_kv_put(KV_SECRET_PREFIX + name, blob, overwrite=True, namespace=NAMESPACE)


def get_secret(name: str) -> dict[str, str] | None:
    blob = internal_kv._internal_kv_get(KV_SECRET_PREFIX + name, namespace=NAMESPACE)
    return None if blob is None else dict(json.loads(blob))


def delete_secret(name: str) -> bool:
    return bool(internal_kv._internal_kv_del(KV_SECRET_PREFIX + name, namespace=NAMESPACE))


def secret_names() -> list[str]:
    keys = internal_kv._internal_kv_list(KV_SECRET_PREFIX, namespace=NAMESPACE)
    names = [(k.decode() if isinstance(k, bytes) else k)[len(KV_SECRET_PREFIX) :] for k in keys]
    return sorted(names)
