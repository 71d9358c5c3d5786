"""What the job API's routes need from a cluster (``Backend``), and the one that goes
through the SDK to the connected cluster; tests put their own in its place."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

import rayfn
from rayfn.records import CallGraphNode, CallInfo, DeliveryInfo
from rayfn.serve._bodies import ListQuery


class Backend(Protocol):
    """The calls the routes make; the default goes through the SDK to the cluster."""

    async def spawn(
        self,
        app: str,
        function: str,
        args: list[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any] | None = None,
    ) -> str:
        """Raises NotFoundError, InvalidError, SerializationError, ConflictError.
        ``options``: per-call options, as ``Function.with_options`` takes them."""
        ...

    async def result(self, call_id: str) -> Any:
        """The value; raises TimeoutError (pending), OutputExpiredError,
        NotFoundError, InvalidError, or the function's own exception."""
        ...

    async def describe(self, call_id: str) -> CallInfo:
        """Raises NotFoundError, InvalidError."""
        ...

    async def cancel(self, call_id: str) -> CallInfo:
        """Raises NotFoundError, InvalidError."""
        ...

    async def requeue(self, call_id: str) -> CallInfo:
        """Raises NotFoundError, InvalidError (not a dead letter)."""
        ...

    async def list_calls(self, query: ListQuery) -> list[CallInfo]:
        """Raises InvalidError."""
        ...

    async def deliveries(self, call_id: str, again: bool) -> list[DeliveryInfo]:
        """Its webhook's tries (``again``: deliver once more first). Raises
        NotFoundError, InvalidError (no webhook, not ended)."""
        ...

    async def logs(self, call_id: str) -> list[dict[str, Any]]:
        """What each attempt printed: ``{attempt, node, lines, note}``. Raises
        NotFoundError, InvalidError."""
        ...

    async def graph(self, call_id: str) -> CallGraphNode:
        """Raises NotFoundError, InvalidError."""
        ...

    async def apps(self) -> list[dict[str, Any]]:
        """Deployed apps, each with its functions and their options (no secret values)."""
        ...

    async def figures(self, window: float) -> dict[str, Any]:
        """The registry's figures (``rayfn.runtime.figures``)."""
        ...


class ClusterBackend:
    """The job API's backend on a real cluster, through the SDK."""

    # Function handles (with the signature they checked arguments against) are reused
    # this long, so a submit costs one registry round trip, not a lookup too.
    HANDLE_TTL_S = 10.0

    def __init__(self) -> None:
        self._handles: dict[tuple[str, str], tuple[rayfn.Function, float]] = {}

    async def spawn(
        self,
        app: str,
        function: str,
        args: list[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any] | None = None,
    ) -> str:
        handle = self._handle(app, function)
        if options:
            handle = handle.with_options(**options)
        call = await handle.spawn.aio(*args, **kwargs)
        return call.object_id

    def _handle(self, app: str, function: str) -> rayfn.Function:
        now = time.monotonic()
        cached = self._handles.get((app, function))
        if cached is not None and now - cached[1] < self.HANDLE_TTL_S:
            return cached[0]
        handle = rayfn.Function.from_name(app, function)
        if len(self._handles) > 10_000:
            self._handles.clear()
        self._handles[(app, function)] = (handle, now)
        return handle

    async def result(self, call_id: str) -> Any:
        return await rayfn.FunctionCall.from_id(call_id).get.aio(timeout=0)

    async def describe(self, call_id: str) -> CallInfo:
        return await rayfn.FunctionCall.from_id(call_id).status.aio()

    async def cancel(self, call_id: str) -> CallInfo:
        return await rayfn.FunctionCall.from_id(call_id).cancel.aio()

    async def requeue(self, call_id: str) -> CallInfo:
        return await rayfn.FunctionCall.from_id(call_id).requeue.aio()

    async def list_calls(self, query: ListQuery) -> list[CallInfo]:
        listing = functools.partial(rayfn.list_calls, **query.model_dump())
        return await asyncio.to_thread(listing)

    async def deliveries(self, call_id: str, again: bool) -> list[DeliveryInfo]:
        call = rayfn.FunctionCall.from_id(call_id)
        return await (call.redeliver.aio() if again else call.deliveries.aio())

    async def logs(self, call_id: str) -> list[dict[str, Any]]:
        found = await asyncio.to_thread(rayfn.console.call_logs, call_id)
        return [dataclasses.asdict(log) for log in found]

    async def graph(self, call_id: str) -> CallGraphNode:
        call = rayfn.FunctionCall.from_id(call_id)
        (root,) = await asyncio.to_thread(call.get_call_graph)
        return root

    async def apps(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(rayfn.console.apps)

    async def figures(self, window: float) -> dict[str, Any]:
        return await asyncio.to_thread(rayfn.console.figures, window)


def get_backend(request: Request) -> Backend:
    """The backend of this app (a dependency, so tests can override it)."""
    backend: Backend = request.app.state.backend
    return backend


BackendDep = Annotated[Backend, Depends(get_backend)]
