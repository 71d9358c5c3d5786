"""Ray's GCS key-value store in rayfn's namespace, as the registry's journal, deployed
code and apps, secrets and the Dict/Queue stores use it (Ray's private API behind it is
in ``rayfn.runtime._ray_compat``)."""

from __future__ import annotations

from rayfn.runtime import _ray_compat as ray_compat
from rayfn.runtime.constants import NAMESPACE


def get(key: str) -> bytes | None:
    return ray_compat.kv_get(key, namespace=NAMESPACE)


def put(key: str, value: bytes) -> None:
    ray_compat.kv_put(key, value, namespace=NAMESPACE)


def delete(key: str, by_prefix: bool = False) -> int:
    """Delete ``key`` (or every key starting with it); how many went."""
    return ray_compat.kv_delete(key, namespace=NAMESPACE, by_prefix=by_prefix)


def keys(prefix: str) -> list[str]:
    return ray_compat.kv_keys(prefix, namespace=NAMESPACE)


async def put_async(key: str, value: bytes) -> None:
    await ray_compat.kv_put_async(key, value, namespace=NAMESPACE)


async def delete_async(key: str, by_prefix: bool = False) -> None:
    await ray_compat.kv_delete_async(key, namespace=NAMESPACE, by_prefix=by_prefix)
