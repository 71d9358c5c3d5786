"""Methods with an async twin, Modal style: ``obj.spawn(...)`` blocks, while
``await obj.spawn.aio(...)`` does the same without blocking the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class aio_method(Generic[R]):
    """Decorate the blocking method, then its async twin with ``@name.aio_impl``.

    Example:
        >>> class Call:
        ...     @aio_method
        ...     def get(self): ...
        ...     @get.aio_impl
        ...     async def get(self): ...
    """

    def __init__(self, sync: Callable[..., R]) -> None:
        self._sync = sync
        self._async: Callable[..., Awaitable[R]] | None = None
        self.__doc__ = sync.__doc__
        self.__name__ = sync.__name__

    def aio_impl(self, fn: Callable[..., Awaitable[R]]) -> aio_method[R]:
        self._async = fn
        return self

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return _Bound(obj, self)


class _Bound(Generic[R]):
    __slots__ = ("_method", "_obj")

    def __init__(self, obj: object, method: aio_method[R]) -> None:
        self._obj = obj
        self._method = method

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return self._method._sync(self._obj, *args, **kwargs)

    def aio(self, *args: Any, **kwargs: Any) -> Awaitable[R]:
        """The same call, awaitable."""
        assert self._method._async is not None, f"{self._method.__name__} has no async twin"
        return self._method._async(self._obj, *args, **kwargs)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self._method.__doc__


async def wait_uncancelled(future: Future[R]) -> R:
    """The outcome of a ``concurrent.futures.Future``, awaited without blocking the
    event loop. Cancelling the awaiting task (``asyncio.wait_for``, an HTTP client
    that gave up) does not cancel ``future``, which others may hold: a ``get.aio``
    that times out must not un-send a call its ``spawn()`` already returned.
    ``asyncio.wrap_future`` alone would cancel it."""
    return await asyncio.shield(asyncio.wrap_future(future))
