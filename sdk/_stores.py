"""``rayfn.Dict`` and ``rayfn.Queue``: Modal's shared objects, each a detached named
actor (``rayfn:dict:<name>``, ``rayfn:queue:<name>`` in the ``rayfn`` namespace).

Keys and values are pickled here (cloudpickle), so they can be anything picklable and
the actor never imports user code. A handle pickles as its name: pass it to functions
as an argument and they talk to the same object. Contents live in the actor's memory:
they last while the cluster does, and are lost if that actor's process dies.
"""

from __future__ import annotations

import contextlib
import queue
import secrets
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import ray
from ray.actor import ActorHandle

from rayfn import _connection
from rayfn._checks import check_name
from rayfn.exception import InvalidError, NotFoundError
from rayfn.runtime.constants import NAMESPACE
from rayfn.runtime.stores import DictStore, QueueStore

_MISSING = object()
S = TypeVar("S", bound="_Store")


def _dumps(value: Any) -> bytes:
    return ray.cloudpickle.dumps(value)


def _loads(blob: bytes) -> Any:
    return ray.cloudpickle.loads(blob)


class _Store:
    """A named store actor, found or created on first use."""

    _kind: ClassVar[str]
    _actor_class: ClassVar[Any]

    def __init__(self, name: str, create_if_missing: bool) -> None:
        self.name = name
        self._create = create_if_missing
        self._handle: ActorHandle | None = None

    @classmethod
    def from_name(cls: type[S], name: str, *, create_if_missing: bool = False) -> S:
        """The store called ``name``; lazy: a missing one raises ``NotFoundError`` on
        first use unless ``create_if_missing``."""
        return cls(check_name(cls._kind, name), create_if_missing)

    @classmethod
    @contextlib.contextmanager
    def ephemeral(cls: type[S]) -> Iterator[S]:
        """A store that exists for the ``with`` block only."""
        store = cls(f"ephemeral-{secrets.token_hex(8)}", True)
        try:
            yield store
        finally:
            if store._handle is not None:
                ray.kill(store._handle)

    @classmethod
    def delete(cls, name: str) -> None:
        """Delete the store called ``name`` and its contents.

        Raises:
            NotFoundError: there is no such store.
        """
        ray.kill(cls.from_name(name)._actor())

    def _actor(self) -> ActorHandle:
        if self._handle is None:
            _connection.connect()
            actor_name = f"rayfn:{self._kind.lower()}:{self.name}"
            if self._create:
                self._handle = (
                    ray.remote(self._actor_class)
                    .options(
                        name=actor_name,
                        namespace=NAMESPACE,
                        lifetime="detached",
                        get_if_exists=True,
                        num_cpus=0,
                        max_concurrency=1000,
                    )
                    .remote()
                )
            else:
                try:
                    self._handle = ray.get_actor(actor_name, namespace=NAMESPACE)
                except ValueError:
                    raise NotFoundError(
                        f"No {self._kind} named {self.name!r}; create it with "
                        f"{self._kind}.from_name({self.name!r}, create_if_missing=True)."
                    ) from None
        return self._handle

    def _ask(self, method: str, *args: Any) -> Any:
        return ray.get(getattr(self._actor(), method).remote(*args))

    def __reduce__(self) -> tuple[Any, tuple[str, bool]]:
        # Passed to a function, a handle is its name; it is there already (created here).
        return (type(self), (self.name, self._create))

    def __repr__(self) -> str:
        return f"{self._kind}({self.name!r})"


class Dict(_Store):
    """A dict shared by every process of the cluster (Modal's ``modal.Dict``).

    Example:
        >>> d = rayfn.Dict.from_name("results", create_if_missing=True)
        >>> d["job-1"] = {"done": True}
        >>> d.put("lock", "me", skip_if_exists=True)  # True only for the first caller
    """

    _kind = "Dict"
    _actor_class = DictStore

    def get(self, key: Any, default: Any = None) -> Any:
        found, blob = self._ask("get", _dumps(key))
        return _loads(blob) if found else default

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __contains__(self, key: Any) -> bool:
        return bool(self._ask("contains", _dumps(key)))

    def __delitem__(self, key: Any) -> None:
        self.pop(key)

    def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Store ``value`` under ``key``; with ``skip_if_exists``, only if the key is
        absent. Returns whether it was written (atomic: usable as a lock)."""
        return bool(self._ask("put", _dumps(key), _dumps(value), skip_if_exists))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        pairs = dict(other, **kwargs)
        self._ask("update", [(_dumps(k), _dumps(v)) for k, v in pairs.items()])

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (``default``, or KeyError, if absent)."""
        found, blob = self._ask("pop", _dumps(key))
        if found:
            return _loads(blob)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def len(self) -> int:
        return int(self._ask("size"))

    def __len__(self) -> int:
        return self.len()

    def items(self) -> Iterator[tuple[Any, Any]]:
        return iter([(_loads(k), _loads(v)) for k, v in self._ask("items")])

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def keys(self) -> Iterator[Any]:
        return (k for k, _ in self.items())

    def values(self) -> Iterator[Any]:
        return (v for _, v in self.items())

    def clear(self) -> None:
        self._ask("clear")


class Queue(_Store):
    """A FIFO queue shared by every process of the cluster (Modal's ``modal.Queue``).

    Example:
        >>> q = rayfn.Queue.from_name("jobs", create_if_missing=True)
        >>> q.put_many([1, 2, 3])
        >>> q.get_many(2, timeout=5)
        [1, 2]
    """

    _kind = "Queue"
    _actor_class = QueueStore

    def put(self, value: Any) -> None:
        self.put_many([value])

    def put_many(self, values: list[Any]) -> None:
        self._ask("put_many", [_dumps(v) for v in values])

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The next value, waiting up to ``timeout`` seconds (None: forever) when
        ``block``; raises ``queue.Empty`` if none came."""
        got = self.get_many(1, block=block, timeout=timeout)
        return got[0]

    def get_many(
        self, n_values: int, block: bool = True, timeout: float | None = None
    ) -> list[Any]:
        """Up to ``n_values`` values, waiting (as ``get``) for at least one; raises
        ``queue.Empty`` if none came."""
        if not isinstance(n_values, int) or isinstance(n_values, bool) or n_values < 1:
            raise InvalidError(f"n_values must be a whole number >= 1, got {n_values!r}.")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
            raise InvalidError(
                f"timeout must be None or a number of seconds >= 0, got {timeout!r}."
            )
        blobs = self._ask("get_many", n_values, timeout if block else 0)
        if not blobs:
            raise queue.Empty(f"Queue {self.name!r} had nothing within the timeout.")
        return [_loads(b) for b in blobs]

    def len(self) -> int:
        return int(self._ask("size"))

    def __len__(self) -> int:
        return self.len()

    def clear(self) -> None:
        self._ask("clear")
