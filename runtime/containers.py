"""Containers of ``@app.cls`` classes: Ray actors, each holding one instance of the
user's class (``@enter`` run once, in the constructor), and the registry's pool of
them per class, grown with the backlog up to ``max_containers`` and shrunk to
``min_containers`` after ``scaledown_window`` seconds idle, or sooner when other work
waits for the resources idle containers hold (``to_reclaim``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import ray

from rayfn.runtime.constants import RECLAIM_IDLE_S
from rayfn.runtime.records import AttemptMeta, ContainerOptions
from rayfn.runtime.resources import Resources, fits_some_node

logger = logging.getLogger(__name__)

# Attribute names the SDK's decorators set on methods (rayfn/_cls.py).
ENTER_MARK = "__rayfn_enter__"
EXIT_MARK = "__rayfn_exit__"


class Container:
    """One container: an instance of the user's class, serving its method calls."""

    def __init__(
        self,
        code_key: str,
        label: str,
        secret_names: tuple[str, ...],
        max_inputs: int,
        mounts: tuple[tuple[str, str], ...] = (),
    ) -> None:
        from rayfn.runtime import executor, volumes

        self._max_inputs = max_inputs
        self._code = (code_key, label)
        volumes.mount(mounts)  # before @enter, which may load from them
        cls = executor.load_code(code_key, label)
        with executor.environment(executor.secret_env(secret_names) if secret_names else {}):
            self._instance = build_instance(cls)

    def run(self, method: str, header: str, args_blob: bytes) -> tuple[AttemptMeta, Any]:
        from rayfn.runtime import executor

        return executor.run_call(
            header,
            args_blob,
            resolve=lambda: self._bound(method),
            report_start=self._max_inputs == 1,
        )

    def run_batch(
        self, method: str, headers: list[str], blobs: list[bytes]
    ) -> tuple[list[AttemptMeta], None]:
        """A ``@batched`` method's calls, in one call of it."""
        from rayfn.runtime import executor

        return executor.run_batch(headers, blobs, resolve=lambda: self._bound(method))

    def stream(self, method: str, header: str, args_blob: bytes) -> Iterator[Any]:
        """A generator method's call: what it yields, then how it went."""
        from rayfn.runtime import executor

        values = executor.stream_call(
            header,
            args_blob,
            resolve=lambda: self._bound(method),
            report_start=self._max_inputs == 1,
        )
        for value in values:  # noqa: UP028  (not `yield from`: see executor.stream_call)
            yield value

    def _bound(self, method: str) -> Any:
        from rayfn.runtime import executor

        executor.load_code(*self._code)  # loaded already: puts its modules back in place
        return getattr(self._instance, method)

    def shutdown(self) -> None:
        """Run the ``@exit`` methods; the registry kills the actor after."""
        for method in _marked(type(self._instance), EXIT_MARK):
            try:
                getattr(self._instance, method)()
            except Exception:
                logger.exception("@exit method %s failed", method)


def build_instance(cls: type) -> Any:
    """An instance of a user's ``@app.cls`` class, its ``@enter`` methods run: what a
    container (or a web method's replica) serves."""
    instance = cls()
    for method in _marked(cls, ENTER_MARK):
        getattr(instance, method)()
    return instance


def _marked(cls: type, mark: str) -> list[str]:
    return [
        name
        for name in dir(cls)
        if callable(getattr(cls, name, None)) and getattr(getattr(cls, name), mark, False)
    ]


RemoteContainer = ray.remote(Container)


@dataclass
class Slot:
    handle: Any
    in_flight: int = 0
    idle_since: float = field(default_factory=time.monotonic)


class Pool:
    """The containers of one class of one deployment, as the registry sees them."""

    def __init__(self, container: ContainerOptions, held: Resources) -> None:
        self.container = container
        self.held = held  # what each of its containers holds while it lives
        self.slots: list[Slot] = []
        self.retired = False  # its app was redeployed or stopped: no minimum to keep

    def acquire(self, start: Callable[[], Any]) -> Slot | None:
        """A container with a free input slot (the least busy), a new one made by
        ``start()`` while under ``max_containers``, or None: the call waits."""
        spec = self.container
        free = [s for s in self.slots if s.in_flight < spec.max_inputs]
        if free:
            slot = min(free, key=lambda s: s.in_flight)
        elif spec.max_containers is None or len(self.slots) < spec.max_containers:
            slot = self._add(start)
        else:
            return None
        slot.in_flight += 1
        return slot

    def capacity(self) -> int | None:
        """How many more calls it can take now, growing to ``max_containers``
        (None: no bound)."""
        spec = self.container
        free = sum(spec.max_inputs - s.in_flight for s in self.slots)
        if spec.max_containers is None:
            return None
        return free + max(0, spec.max_containers - len(self.slots)) * spec.max_inputs

    def warm(self, start: Callable[[], Any]) -> None:
        while len(self.slots) < self.container.min_containers:
            self._add(start)

    def _add(self, start: Callable[[], Any]) -> Slot:
        slot = Slot(start())
        self.slots.append(slot)
        return slot

    def release(self, slot: Slot) -> None:
        slot.in_flight -= 1
        if slot.in_flight == 0:
            slot.idle_since = time.monotonic()

    def discard(self, slot: Slot) -> None:
        """Forget a container that died or was killed (a timeout, a cancel)."""
        if slot in self.slots:
            self.slots.remove(slot)
        ray.kill(slot.handle)

    def idle_to_stop(self, now: float) -> list[Slot]:
        """Idle containers past ``scaledown_window``, above ``min_containers``; of a
        retired pool (its app stopped or redeployed: no call will come), every idle
        one at once."""
        spare = len(self.slots) - (0 if self.retired else self.container.min_containers)
        window = 0.0 if self.retired else self.container.scaledown_window
        idle = [s for s in self.slots if s.in_flight == 0 and now - s.idle_since >= window]
        stopped = idle[: max(0, spare)]
        for slot in stopped:
            self.slots.remove(slot)
        return stopped

    def reclaimable(self, now: float) -> list[Slot]:
        """Containers above ``min_containers`` idle at least ``RECLAIM_IDLE_S``, the
        longest idle first: those stopped early when other work waits for resources."""
        spare = len(self.slots) - (0 if self.retired else self.container.min_containers)
        if spare <= 0:
            return []
        idle = [s for s in self.slots if s.in_flight == 0 and now - s.idle_since >= RECLAIM_IDLE_S]
        return sorted(idle, key=lambda s: s.idle_since)[:spare]

    def remove(self, slot: Slot) -> None:
        """Take an idle container out of the pool, to be stopped."""
        self.slots.remove(slot)


def to_reclaim(
    idle: list[tuple[Slot, Resources]],
    waiting: list[tuple[Resources, int]],
    freeing: list[Resources],
    nodes: list[Resources],
) -> list[Slot]:
    """Which ``idle`` containers (each with what it holds) to stop now so that work
    waiting for resources can run.

    Args:
        idle: containers that may go (``Pool.reclaimable``), in the order to stop them.
        waiting: resource shapes Ray cannot place now, each with how many wait for it.
        freeing: what containers already being stopped will give back.
        nodes: each live node's total resources; a shape no node could ever hold
            (a GPU on a CPU-only cluster) waits for a new node, not for ours.

    Containers are stopped while some resource they hold is still short: what the
    waiting work asks for, less what is already on its way back.
    """
    short: Resources = {}
    for shape, count in waiting:
        if fits_some_node(shape, nodes):
            for name, amount in shape.items():
                short[name] = short.get(name, 0.0) + amount * count
    for held in freeing:
        for name, amount in held.items():
            short[name] = short.get(name, 0.0) - amount
    chosen = []
    for slot, held in idle:
        if any(short.get(name, 0.0) > 1e-9 for name in held):
            chosen.append(slot)
            for name, amount in held.items():
                short[name] = short.get(name, 0.0) - amount
    return chosen


async def stop_container(handle: Any) -> None:
    try:
        await asyncio.wait_for(handle.shutdown.remote(), 30)
    except Exception:  # a container that cannot say goodbye is killed all the same
        logger.warning("a container's @exit did not finish; killing it")
    ray.kill(handle)
