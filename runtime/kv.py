"""Ray's GCS key-value store, as the registry's journal and the Dict/Queue stores use
it: the one place they touch Ray's private ``internal_kv`` API. Every key lives in
rayfn's namespace."""

from __future__ import annotations

from typing import Any

from ray.experimental import internal_kv

from rayfn.runtime.constants import NAMESPACE

_NS = NAMESPACE.encode()


def _client() -> Any:
    return internal_kv.internal_kv_get_gcs_client()


def get(key: str) -> bytes | None:
    return internal_kv._internal_kv_get(key, namespace=NAMESPACE)


def put(key: str, value: bytes) -> None:
    internal_kv._internal_kv_put(key, value, overwrite=True, namespace=NAMESPACE)


def delete(key: str, by_prefix: bool = False) -> None:
    internal_kv._internal_kv_del(key, del_by_prefix=by_prefix, namespace=NAMESPACE)


def keys(prefix: str) -> list[str]:
    return [k.decode() for k in internal_kv._internal_kv_list(prefix, namespace=NAMESPACE)]


async def put_async(key: str, value: bytes) -> None:
    await _client().async_internal_kv_put(key.encode(), value, True, namespace=_NS, timeout=None)


async def delete_async(key: str, by_prefix: bool = False) -> None:
    await _client().async_internal_kv_del(key.encode(), by_prefix, namespace=_NS, timeout=None)
