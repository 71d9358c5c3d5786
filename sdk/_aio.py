"""Methods with an async twin, Modal style: ``obj.spawn(...)`` blocks, while
``await obj.spawn.aio(...)`` does the same without blocking the event loop.

A method is written once, as a generator of *steps*: each ``yield`` hands over
something to wait for (an actor ``Reply``, a ``concurrent.futures.Future`` or an
``ObjectRef``) and receives its value, or has its exception raised at the ``yield``.
``run_steps`` waits for each by blocking, ``run_steps_async`` by awaiting, so the
blocking and the async form cannot drift apart (the sans-I/O pattern of h11)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Generic, TypeAlias, TypeVar

import ray

from rayfn.runtime.clients import Reply

R = TypeVar("R")

# What a step waits for.
Step: TypeAlias = "Reply[Any] | Future[Any] | ray.ObjectRef[Any]"
Steps: TypeAlias = Generator[Step, Any, R]

_in_async = contextvars.ContextVar("rayfn_steps_in_async", default=False)


def running_async() -> bool:
    """Whether the steps running now are awaited (``.aio``), not blocked on."""
    return _in_async.get()


def run_steps(steps: Steps[R]) -> R:
    """Run ``steps``, blocking for each."""
    running = _drive(steps, _block)
    try:
        running.send(None)  # _block never suspends: this runs the steps to their end
    except StopIteration as done:
        return done.value
    raise RuntimeError("a blocking step suspended")  # pragma: no cover


async def run_steps_async(steps: Steps[R]) -> R:
    """Run ``steps``, awaiting each. A ``Future`` is awaited shielded: cancelling the
    awaiting task (``asyncio.wait_for``, an HTTP client that gave up) leaves it to
    whoever else holds it (a ``get.aio`` that times out must not un-send a call its
    ``spawn()`` already returned)."""
    _in_async.set(True)  # for this task only: asyncio gives each its own context
    return await _drive(steps, _await)


async def _drive(steps: Steps[R], wait: Callable[[Step], Awaitable[Any]]) -> R:
    """Hand each step's value (or exception) back to ``steps`` until they return."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value
        value, error = None, None
        try:
            value = await wait(step)
        except Exception as exc:
            error = exc


async def _block(step: Step) -> Any:
    return ray.get(step) if isinstance(step, ray.ObjectRef) else step.result()


async def _await(step: Step) -> Any:
    return await (wait_uncancelled(step) if isinstance(step, Future) else step)


class aio_method(Generic[R]):
    """A method written as steps (see the module's docstring), callable blocking and,
    as ``.aio``, from async code.

    Example:
        >>> class Call:
        ...     @aio_method
        ...     def get(self) -> Steps[int]:
        ...         outcome = yield clients.registry().poll(...)
        ...         return outcome
    """

    def __init__(self, steps: Callable[..., Steps[R]]) -> None:
        self._steps = steps
        self.__doc__ = steps.__doc__
        self.__name__ = steps.__name__

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
        return run_steps(self._method._steps(self._obj, *args, **kwargs))

    def aio(self, *args: Any, **kwargs: Any) -> Awaitable[R]:
        """The same call, awaitable."""
        return run_steps_async(self._method._steps(self._obj, *args, **kwargs))

    def steps(self, *args: Any, **kwargs: Any) -> Steps[R]:
        """The same call as steps, for another method's steps to ``yield from``."""
        return self._method._steps(self._obj, *args, **kwargs)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self._method.__doc__


class aio_iter_method(aio_method[Iterable[R]]):
    """A method written as steps that return an iterable: ``obj.keys()`` iterates it,
    ``async for key in obj.keys.aio()`` does the same from async code."""

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return _BoundIter(obj, self)


class _BoundIter(_Bound[Iterable[R]]):
    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Iterator[R]:
        return iter(super().__call__(*args, **kwargs))

    def aio(self, *args: Any, **kwargs: Any) -> AsyncIterator[R]:  # type: ignore[override]
        return _each(super().aio(*args, **kwargs))


async def _each(items: Awaitable[Iterable[R]]) -> AsyncIterator[R]:
    for item in await items:
        yield item


class in_thread(Generic[R]):
    """A method written as a blocking loop (``map``, ``for_each``...), whose ``.aio``
    runs it in a worker thread so the event loop goes on; a method that returns an
    iterator gets an async iterator there, each item fetched in the thread.

    Example:
        >>> async for result in f.map.aio(range(10)):
        ...     print(result)
    """

    def __init__(self, blocking: Callable[..., R]) -> None:
        self._blocking = blocking
        self.__doc__ = blocking.__doc__
        self.__name__ = blocking.__name__

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return _Threaded(obj, self._blocking)


class _Threaded:
    __slots__ = ("_blocking", "_obj")

    def __init__(self, obj: object, blocking: Callable[..., Any]) -> None:
        self._obj = obj
        self._blocking = blocking

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._blocking(self._obj, *args, **kwargs)

    def aio(self, *args: Any, **kwargs: Any) -> Any:
        """The same call from async code: awaitable, or async-iterable where the
        blocking form returns an iterator."""
        return _ThreadedCall(lambda: self._blocking(self._obj, *args, **kwargs))

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self._blocking.__doc__


class _ThreadedCall:
    """A blocking call started in a worker thread once awaited or iterated."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._call = call

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.to_thread(self._call).__await__()

    async def __aiter__(self) -> AsyncIterator[Any]:
        items = iter(await asyncio.to_thread(self._call))
        done = object()
        try:
            while (item := await asyncio.to_thread(next, items, done)) is not done:
                yield item
        finally:  # stopped early: a generator's own cleanup runs (remote_gen cancels)
            close = getattr(items, "close", None)
            if close is not None:
                await asyncio.to_thread(close)


async def wait_uncancelled(future: Future[R]) -> R:
    """The outcome of a ``concurrent.futures.Future``, awaited without blocking the
    event loop. Cancelling the awaiting task does not cancel ``future``, which others
    may hold. ``asyncio.wrap_future`` alone would cancel it."""
    return await asyncio.shield(asyncio.wrap_future(future))
