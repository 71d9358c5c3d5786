"""How the registry hands a deployed function's calls to Ray: the Ray options built
once per function, the task header, and (for ``@app.cls`` methods) the call sent to a
container of the class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import ray

from rayfn.runtime import code
from rayfn.runtime.commands import LaunchItem, Policy
from rayfn.runtime.constants import PACK_MIN_TIMEOUT_S
from rayfn.runtime.containers import RemoteContainer, Slot
from rayfn.runtime.executor import execute_batch, execute_call, execute_pack, execute_stream
from rayfn.runtime.identity import FunctionVersion
from rayfn.runtime.protocol import TaskHeader
from rayfn.runtime.records import AttemptMeta, FunctionOptions

# A launch's two returns (a task of execute_call or execute_pack, or a container's method
# call): how its call went (a pack's: each of its calls), and the call's value when it is
# too large to ride inline in that (else None).
MetaRef = ray.ObjectRef[AttemptMeta | list[AttemptMeta]]
PayloadRef = ray.ObjectRef[object]
# A generator function's launch: a ray.ObjectRefGenerator, one ref per value it yields,
# then its StreamEnd (Ray declares the class as a plain variable, which mypy cannot use).
StreamRefs: TypeAlias = Any


@dataclass(frozen=True)
class LoadedFunction:
    """A deployed function as the registry dispatches it."""

    key: FunctionVersion
    code_key: str  # where workers find its code (runtime/code.py)
    options: FunctionOptions
    runtime_env: dict[str, Any] | None
    task_name: str  # "app.function", as the Ray dashboard shows it
    task: Any = None  # execute_call with this function's Ray options, built once
    pack_task: Any = None  # execute_pack likewise, where calls may be packed (can_pack)
    policy: Policy = field(init=False)  # what the call book needs to know of it

    @classmethod
    def build(
        cls,
        key: FunctionVersion,
        options: FunctionOptions,
        runtime_env: dict[str, Any] | None,
    ) -> LoadedFunction:
        task_name = key.key.label
        code_key = code.code_key(key.deployment, key.version, key.function)
        loaded = cls(key, code_key, options, runtime_env, task_name)
        if not loaded.picks_gpu_per_call and options.container is None:
            object.__setattr__(loaded, "task", loaded._task_with_options(loaded._executor))
        if loaded.can_pack:
            object.__setattr__(loaded, "pack_task", loaded._task_with_options(execute_pack))
        if options.max_batch_size and options.container is None:
            object.__setattr__(loaded, "pack_task", loaded._task_with_options(execute_batch))
        policy = Policy(
            version=key,
            label=task_name,
            # A container of a @concurrent function takes that many calls at once.
            max_containers=(
                None
                if options.max_containers is None
                else options.max_containers * options.concurrent_inputs
            ),
            retries=options.retries,
            timeout=options.timeout,
            startup_timeout=options.startup_timeout,
            can_pack=loaded.can_pack,
            pooled=options.container is not None,
            batch=options.max_batch_size,
            batch_wait=options.batch_wait_ms / 1000,
            needs=describe_needs(options),
            runner=loaded,
        )
        object.__setattr__(loaded, "policy", policy)
        return loaded

    @property
    def can_pack(self) -> bool:
        """Whether several calls may share a task (runtime/constants.py, PACK_*): not
        a class's method (its container is the unit), no per-call GPU choice, no
        startup timeout (it would run from the pack's hand-off, not the call's), and no
        timeout too short to start from a RUNNING report."""
        options = self.options
        return (
            options.container is None
            and not self.picks_gpu_per_call
            and options.startup_timeout is None
            and (options.timeout is None or options.timeout >= PACK_MIN_TIMEOUT_S)
            and options.concurrent_inputs == 1  # its calls are meant to overlap
            and not options.generator  # its task streams one call's values
            and not options.max_batch_size  # its calls go in one call, not in turn
        )

    @property
    def _executor(self) -> Any:
        return execute_stream if self.options.generator else execute_call

    @property
    def picks_gpu_per_call(self) -> bool:
        """GPU fallbacks look at the cluster's current nodes on every dispatch."""
        return self.options.gpu is not None and len(self.options.gpu.types) > 1

    def header(self, call: LaunchItem) -> str:
        options = self.options
        header = TaskHeader(
            call.call_id,
            call.attempt,
            self.code_key,
            options.secrets,
            options.max_result_bytes,
            self.task_name,
            options.volumes,
            call.start_by,
        )
        return header.to_str()

    def submit(self, call: LaunchItem) -> tuple[MetaRef, PayloadRef]:
        refs: tuple[MetaRef, PayloadRef] = self._task().remote(self.header(call), call.args)
        return refs

    def submit_stream(self, call: LaunchItem) -> StreamRefs:
        """Start a generator function's call: Ray hands its values on as they come."""
        stream: StreamRefs = self._task().remote(self.header(call), call.args)
        return stream

    def _task(self) -> Any:
        return self._task_with_options(self._executor) if self.picks_gpu_per_call else self.task

    def submit_pack(self, calls: Sequence[LaunchItem]) -> tuple[MetaRef, PayloadRef]:
        """Run several calls in one task: in turn, or (a ``@batched`` function) in one
        call of it."""
        headers = [self.header(call) for call in calls]
        refs: tuple[MetaRef, PayloadRef] = self.pack_task.remote(
            headers, [call.args for call in calls]
        )
        return refs

    def submit_to(self, slot: Slot, call: LaunchItem) -> tuple[MetaRef, PayloadRef]:
        """Send a method call to a container of its class."""
        assert self.options.container is not None
        method = slot.handle.run.options(num_returns=2, name=self.task_name)
        refs: tuple[MetaRef, PayloadRef] = method.remote(
            self.options.container.method, self.header(call), call.args
        )
        return refs

    def batch_to(self, slot: Slot, calls: Sequence[LaunchItem]) -> tuple[MetaRef, PayloadRef]:
        """Send a batch of a ``@batched`` method's calls to a container of its class."""
        assert self.options.container is not None
        method = slot.handle.run_batch.options(num_returns=2, name=self.task_name)
        headers = [self.header(call) for call in calls]
        refs: tuple[MetaRef, PayloadRef] = method.remote(
            self.options.container.method, headers, [call.args for call in calls]
        )
        return refs

    def stream_to(self, slot: Slot, call: LaunchItem) -> StreamRefs:
        """Send a generator method's call to a container of its class."""
        assert self.options.container is not None
        method = slot.handle.stream.options(num_returns="streaming", name=self.task_name)
        stream: StreamRefs = method.remote(
            self.options.container.method, self.header(call), call.args
        )
        return stream

    def start_container(self) -> Any:
        """A new container actor of this method's class (it runs ``@enter`` as it
        starts); the registry owns it."""
        container = self.options.container
        assert container is not None
        resources: dict[str, float] | None = (
            ray.cluster_resources() if self.picks_gpu_per_call else None
        )
        options = self.options.ray_task_options(resources)
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        return RemoteContainer.options(
            max_concurrency=container.max_inputs, max_restarts=0, **options
        ).remote(
            self.code_key,
            self.task_name,
            self.options.secrets,
            container.max_inputs,
            self.options.volumes,
        )

    def _task_with_options(self, task: Any) -> Any:
        resources: dict[str, float] | None = (
            ray.cluster_resources() if self.picks_gpu_per_call else None
        )
        options = self.options.ray_task_options(resources)
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        return task.options(name=self.task_name, **options)


def describe_needs(options: FunctionOptions) -> str:
    needs = [f"{options.cpu if options.cpu is not None else 1:g} CPU"]
    if options.gpu is not None:
        kinds = " or ".join(options.gpu.types) or "any"
        needs.append(f"{options.gpu.count} GPU ({kinds})")
    if options.memory_mib is not None:
        needs.append(f"{options.memory_mib} MiB")
    return ", ".join(needs)
