"""``rayfn.Dict`` and ``rayfn.Queue``: Modal's shared objects, each a detached named
actor (``rayfn:dict:<name>``, ``rayfn:queue:<name>`` in the ``rayfn`` namespace).

Keys and values are pickled here (cloudpickle), so they can be anything picklable and
the actor never imports user code. A handle pickles as its name: pass it to functions
as an argument and they talk to the same object.

The actor writes every change through to Ray's GCS key-value store before answering
(runtime/stores.py), so a store whose actor dies comes back as it was: Ray restarts it,
it reads its contents back, and handles wait out the restart. One store holds at most
``STORE_MAX_BYTES`` (64 MiB) of keys and values; a change past that raises
``InvalidError``. A deleted store is gone, contents and all: its old handles raise
``NotFoundError``.
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, TypeVar

import ray
from ray.actor import ActorHandle

from rayfn import _connection
from rayfn._aio import Steps, aio_iter_method, aio_method, run_steps
from rayfn._checks import check_name, check_wait
from rayfn.exception import ClusterError, InvalidError, NotFoundError, SerializationError
from rayfn.runtime.clients import DictClient, QueueClient, Reply
from rayfn.runtime.constants import (
    CONTROL_RESTART_WAIT_S,
    NAMESPACE,
    ON_HEAD_NODE,
    RESTART_RETRY_PAUSE_S,
)
from rayfn.runtime.stores import DictStore, QueueStore, StoreFull

_MISSING = object()
S = TypeVar("S", bound="_Store")
C = TypeVar("C", DictClient, QueueClient)
T = TypeVar("T")


def _dumps(value: Any) -> bytes:
    try:
        return ray.cloudpickle.dumps(value)
    except Exception as exc:
        raise SerializationError(
            f"Cannot pickle a {type(value).__name__} for a Dict or Queue: {type(exc).__name__}: "
            f"{exc}. Keys and values must be picklable (plain data, not locks, sockets or "
            "open files)."
        ) from exc


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
        self._clients: DictClient | QueueClient | None = None

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
                store._destroy()

    @classmethod
    def delete(cls, name: str) -> None:
        """Delete the store called ``name`` and its contents.

        Raises:
            NotFoundError: there is no such store.
        """
        cls.from_name(name)._destroy()

    def _destroy(self) -> None:
        """Drop the contents (persisted too), then the actor; return once its name is
        gone (``ray.kill`` returns before), so no call after this one reaches it."""
        self._ask(self._client().destroy())
        ray.kill(self._actor())
        deadline = time.monotonic() + CONTROL_RESTART_WAIT_S
        while time.monotonic() < deadline:
            try:
                ray.get_actor(self._actor_name, namespace=NAMESPACE)
            except ValueError:
                return
            time.sleep(RESTART_RETRY_PAUSE_S)

    def _actor(self) -> ActorHandle:
        if self._handle is None:
            _connection.connect()
            if self._create:
                self._handle = (
                    ray.remote(self._actor_class)
                    .options(
                        name=self._actor_name,
                        namespace=NAMESPACE,
                        lifetime="detached",
                        get_if_exists=True,
                        max_restarts=-1,  # it comes back as it was (see the module docstring)
                        num_cpus=0,
                        resources=ON_HEAD_NODE,  # never on a node the autoscaler removes
                        max_concurrency=1000,
                    )
                    .remote(self.name)
                )
            else:
                self._handle = self._find()
        return self._handle

    @property
    def _actor_name(self) -> str:
        return f"rayfn:{self._kind.lower()}:{self.name}"

    def _find(self) -> ActorHandle:
        """The actor registered under this store's name.

        Raises:
            NotFoundError: there is none (never created, or deleted).
        """
        try:
            return ray.get_actor(self._actor_name, namespace=NAMESPACE)
        except ValueError:
            raise NotFoundError(
                f"No {self._kind} named {self.name!r} (never created, or deleted since); "
                f"create it with {self._kind}.from_name({self.name!r}, create_if_missing=True)."
            ) from None

    def _client_of(self, kind: type[C]) -> C:
        """The typed client of this store's actor (``runtime/clients.py``)."""
        if not isinstance(self._clients, kind):
            self._clients = kind(self._actor, self._found_again, self._unsure)
        return self._clients

    def _client(self) -> Any:
        raise NotImplementedError

    def _found_again(self) -> None:
        """The actor died for good: deleted (``NotFoundError``), or re-created under
        its name since, which this handle then talks to."""
        self._handle = self._find()

    def _unsure(self, method: str) -> ClusterError:
        return ClusterError(
            f"{self!r} restarted, or could not be reached, while its {method} was on the "
            "way: it may or may not have been applied. The handle works again once the "
            f"{self._kind} is back."
        )

    def _ask(self, reply: Reply[T]) -> T:
        """``_asked``, blocking."""
        return run_steps(self._asked(reply))

    def _asked(self, reply: Reply[T]) -> Steps[T]:
        """Wait for ``reply`` (a step: blocking or awaited), waiting out a restart of
        the actor.

        Raises:
            NotFoundError: the store was deleted.
            InvalidError: the change would take the store past ``STORE_MAX_BYTES``.
            ClusterError: a call that is not repeatable may or may not have been applied.
        """
        try:
            answer: T = yield reply
            return answer
        except StoreFull as full:
            raise InvalidError(
                f"{self!r} refused the change: {full.args[0] if full.args else full}. "
                "Keep large data elsewhere (a result, a file) and store a reference."
            ) from None

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

    def _client(self) -> DictClient:
        return self._client_of(DictClient)

    @aio_method
    def get(self, key: Any, default: Any = None) -> Steps[Any]:
        """The value under ``key``, or ``default``."""
        _, blob = yield from self._asked(self._client().get(_dumps(key)))
        return _loads(blob) if blob is not None else default

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    @aio_method
    def contains(self, key: Any) -> Steps[bool]:
        """Whether ``key`` is in the dict (``key in d``)."""
        return bool((yield from self._asked(self._client().contains(_dumps(key)))))

    def __contains__(self, key: Any) -> bool:
        return bool(self.contains(key))

    def __delitem__(self, key: Any) -> None:
        self.pop(key)

    @aio_method
    def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> Steps[bool]:
        """Store ``value`` under ``key``; with ``skip_if_exists``, only if the key is
        absent. Returns whether it was written (atomic: usable as a lock)."""
        if not isinstance(skip_if_exists, bool):
            raise InvalidError(f"skip_if_exists must be True or False, got {skip_if_exists!r}.")
        blobs = (_dumps(key), _dumps(value))
        return bool((yield from self._asked(self._client().put(*blobs, skip_if_exists))))

    @aio_method
    def update(self, other: Any = (), /, **kwargs: Any) -> Steps[None]:
        pairs = dict(other, **kwargs)
        items = [(_dumps(k), _dumps(v)) for k, v in pairs.items()]
        yield from self._asked(self._client().update(items))

    @aio_method
    def pop(self, key: Any, default: Any = _MISSING) -> Steps[Any]:
        """Remove ``key`` and return its value (``default``, or KeyError, if absent)."""
        _, blob = yield from self._asked(self._client().pop(_dumps(key)))
        if blob is not None:
            return _loads(blob)
        if default is _MISSING:
            raise KeyError(key)
        return default

    @aio_method
    def len(self) -> Steps[int]:
        return int((yield from self._asked(self._client().size())))

    def __len__(self) -> int:
        return int(self.len())

    @aio_iter_method
    def items(self) -> Steps[list[tuple[Any, Any]]]:
        """The (key, value) pairs, as they are now; ``async for`` with ``.aio()``."""
        pairs = yield from self._asked(self._client().items())
        return [(_loads(k), _loads(v)) for k, v in pairs]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    @aio_iter_method
    def keys(self) -> Steps[list[Any]]:
        return [k for k, _ in (yield from self.items.steps())]

    @aio_iter_method
    def values(self) -> Steps[list[Any]]:
        return [v for _, v in (yield from self.items.steps())]

    @aio_method
    def clear(self) -> Steps[None]:
        yield from self._asked(self._client().clear())


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

    def _client(self) -> QueueClient:
        return self._client_of(QueueClient)

    @aio_method
    def put(self, value: Any) -> Steps[None]:
        yield from self.put_many.steps([value])

    @aio_method
    def put_many(self, values: Iterable[Any]) -> Steps[None]:
        """Append each of ``values``, in order, in one round trip."""
        try:
            each = iter(values)
        except TypeError:
            raise TypeError(
                f"put_many takes an iterable of values, got {type(values).__name__}."
            ) from None
        yield from self._asked(self._client().put_many([_dumps(v) for v in each]))

    @aio_method
    def get(self, block: bool = True, timeout: float | None = None) -> Steps[Any]:
        """The next value, waiting up to ``timeout`` seconds (None: forever) when
        ``block``; raises ``queue.Empty`` if none came."""
        got = yield from self.get_many.steps(1, block=block, timeout=timeout)
        return got[0]

    @aio_method
    def get_many(
        self, n_values: int, block: bool = True, timeout: float | None = None
    ) -> Steps[list[Any]]:
        """Up to ``n_values`` values, waiting (as ``get``) for at least one; raises
        ``queue.Empty`` if none came.

        Raises:
            InvalidError: ``n_values`` is not a whole number >= 1, ``block`` not a
                bool, or ``timeout`` not None or 0 to ``MAX_WAIT_S`` seconds.
        """
        if not isinstance(n_values, int) or isinstance(n_values, bool) or n_values < 1:
            raise InvalidError(f"n_values must be a whole number >= 1, got {n_values!r}.")
        if not isinstance(block, bool):
            raise InvalidError(
                f"block must be True or False, got {block!r} (a wait in seconds goes in timeout=)."
            )
        wait = check_wait("timeout", timeout)
        blobs = yield from self._asked(self._client().get_many(n_values, wait if block else 0))
        if not blobs:
            raise queue.Empty(f"Queue {self.name!r} had nothing within the timeout.")
        return [_loads(b) for b in blobs]

    @aio_method
    def len(self) -> Steps[int]:
        return int((yield from self._asked(self._client().size())))

    def __len__(self) -> int:
        return int(self.len())

    @aio_method
    def clear(self) -> Steps[None]:
        yield from self._asked(self._client().clear())
