"""Plain records that cross process boundaries: deployed apps, calls, outcomes.

Records are frozen dataclasses; they hold no handles to live objects except the
``ObjectRef`` of a result, which Ray passes by reference.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from rayfn.records import CallStatus, FailureKind
from rayfn.runtime.constants import DEFAULT_MAX_RESULT_BYTES
from rayfn.runtime.resources import GpuRequest, choose_type
from rayfn.runtime.retries import RetryPolicy
from rayfn.runtime.schedules import Schedule
from rayfn.runtime.webhooks import WebhookTarget

if TYPE_CHECKING:
    import ray


@dataclass(frozen=True)
class ContainerOptions:
    """A method of an ``@app.cls`` class: its calls run in a pool of actors
    ("containers") of the class, each created with ``@enter`` run once."""

    class_name: str
    method: str
    min_containers: int = 0
    max_containers: int | None = None  # None: grow with the backlog without bound
    scaledown_window: float = 60.0  # seconds idle before a container above the min goes
    max_inputs: int = 1  # calls one container serves at once (@concurrent)


@dataclass(frozen=True)
class FunctionOptions:
    """Validated options of one deployed function (see ``rayfn._options``)."""

    cpu: float | None = None  # None: Ray's default of 1 core for a task
    memory_mib: int | None = None
    gpu: GpuRequest | None = None
    result_ttl: float = 3600.0
    timeout: float = 300.0  # seconds per attempt, from when the function starts
    startup_timeout: float | None = None  # seconds from hand-off to Ray until it starts
    max_containers: int | None = None  # calls of this function running at once
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    secrets: tuple[str, ...] = ()  # names of secrets (GCS KV) set as env vars per call
    schedule: Schedule | None = None  # run by the control actor on this schedule
    # A larger result fails the call: RAYFN_MAX_RESULT_BYTES where the app was deployed.
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    container: ContainerOptions | None = None  # set for methods of @app.cls classes
    # @concurrent(max_inputs=N) on a function: N calls share what one call asks for
    # (each reserves 1/N of cpu, memory and GPUs), as N inputs share a Modal container.
    concurrent_inputs: int = 1
    volumes: tuple[tuple[str, str], ...] = ()  # (mount path, volume name), runtime/volumes.py
    # A generator function: its calls stream what they yield (Function.remote_gen).
    generator: bool = False
    # @batched(max_batch_size=, wait_ms=): queued calls go to the function together.
    max_batch_size: int = 0
    batch_wait_ms: int = 0
    webhook: WebhookTarget | None = None  # where each call's end is posted, signed

    def ray_task_options(self, cluster_resources: dict[str, float] | None = None) -> dict[str, Any]:
        """The keyword arguments of Ray's ``.options()`` these options stand for."""
        share = self.concurrent_inputs if self.container is None else 1
        options: dict[str, Any] = {"num_cpus": (1.0 if self.cpu is None else self.cpu) / share}
        if self.memory_mib is not None:
            options["memory"] = self.memory_mib * 1024 * 1024 // share
        if self.gpu is not None:
            gpus = self.gpu.count / share
            # Ray takes a fraction of one GPU, or whole GPUs.
            options["num_gpus"] = gpus if gpus <= 1 or gpus.is_integer() else math.ceil(gpus)
            accelerator = choose_type(self.gpu, cluster_resources or {})
            if accelerator is not None:
                options["accelerator_type"] = accelerator
        return options


@dataclass(frozen=True)
class WebEndpoint:
    """How a function is served over HTTP (``@asgi_app``, ``@wsgi_app``,
    ``@fastapi_endpoint``, ``@web_server``)."""

    # "asgi"/"wsgi": the function returns such an app; "fastapi": it is the handler;
    # "server": it starts a server listening on ``port`` of its node.
    kind: str
    method: str = "GET"  # of a "fastapi" endpoint
    route_prefix: str | None = None  # None: /<app>/<function>
    docs: bool = False  # a "fastapi" endpoint's own /docs (Modal's docs=True)
    port: int | None = None  # of a "server"
    startup_timeout: float = 5.0  # seconds a "server" may take to listen
    requires_auth: bool = False  # requires_proxy_auth: the job API's bearer token


@dataclass(frozen=True)
class Parameter:
    """One parameter of a function, enough to check a call's arguments against it
    without its code (default values themselves are not kept)."""

    name: str
    kind: int  # inspect.Parameter kind, as an int
    has_default: bool


@dataclass(frozen=True)
class ImageSpec:
    """An image as the cluster turns it into a Ray ``runtime_env`` (sdk/_image.py makes
    it; runtime/environment.py checks and builds it, on the cluster)."""

    pip: tuple[str, ...] = ()  # installed in a runtime env only where the cluster lacks them
    uv_pip: tuple[str, ...] = ()  # likewise, installed with uv
    apt: tuple[str, ...] = ()  # system packages: the cluster must have them already
    python_version: str | None = None  # "3.11": the cluster's Python must be it
    registry_image: str | None = None  # from_registry: run in that container (image_uri)
    # Made on the deploying machine: env vars, uploaded local code and files.
    runtime_env: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionSpec:
    """One function of a deployed app: its pickled code and its options."""

    name: str
    code: bytes  # cloudpickle of the user's function, by value
    options: FunctionOptions
    signature: str  # e.g. "(data, *, retries=3)", for listings and error messages
    web: WebEndpoint | None = None
    parameters: tuple[Parameter, ...] | None = None  # None: unknown (accept anything)
    image: ImageSpec | None = None  # its own (``@app.function(image=...)``); None: the app's


@dataclass(frozen=True)
class AppSpec:
    """What ``deploy`` hands the control actor."""

    name: str
    functions: dict[str, FunctionSpec]
    source: str = ""  # the file it came from, for warnings and listings
    ephemeral: bool = False
    image: ImageSpec | None = None  # ``App(image=...)``: of every function without its own
    # Secret.from_dict values, by their derived name: written to GCS KV at deploy.
    inline_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    # Ephemeral apps: seconds without a heartbeat from their client before they stop.
    client_grace: float | None = None


@dataclass(frozen=True)
class AppInfo:
    """A deployed app as listings show it (no code)."""

    name: str
    version: int
    functions: tuple[str, ...]
    deployed_at: float
    source: str
    ephemeral: bool
    runtime_env: dict[str, Any] | None = None  # what the app's image needs on this cluster
    # The same for each function with an image of its own.
    function_envs: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def runtime_env_of(self, function: str) -> dict[str, Any] | None:
        """The runtime env the calls of ``function`` run in."""
        return self.function_envs.get(function, self.runtime_env)


@dataclass(frozen=True)
class FunctionInfo:
    """A deployed function as a client's handle needs it (no code)."""

    app: str
    name: str
    version: int
    signature: str
    options: FunctionOptions
    parameters: tuple[Parameter, ...] | None = None


@dataclass(frozen=True)
class NotDeployed:
    """Answer to a lookup of an app or function that is not deployed."""

    app: str
    function: str | None
    deployed: tuple[str, ...]  # apps, or functions of the app when the app exists

    def message(self) -> str:
        if self.function is None:
            known = ", ".join(self.deployed) or "none"
            return f"App {self.app!r} is not deployed (deployed apps: {known})."
        known = ", ".join(self.deployed) or "none"
        return f"Function {self.function!r} is not in app {self.app!r} (its functions: {known})."


@dataclass(frozen=True)
class RemoteFailure:
    """Why a call failed: the user's exception carried back, or what Ray reported."""

    type_name: str  # qualified, e.g. "builtins.ValueError"
    message: str
    traceback: str  # the remote traceback as text
    pickled: bytes | None  # the exception itself, when it could be pickled
    kind: FailureKind = FailureKind.RAISED
    # The qualified names of the exception's classes, its own first (its MRO), so that
    # retry_on matches a subclass as `except` would; empty in records from before it.
    mro: tuple[str, ...] = ()

    @property
    def type_names(self) -> tuple[str, ...]:
        """The exception's class and its bases by qualified name, most specific first
        (only its own name for a record that predates ``mro``)."""
        return self.mro or (self.type_name,)

    @property
    def summary(self) -> str:
        short = self.type_name.rsplit(".", 1)[-1]
        return f"{short}: {self.message}" if self.message else short

    @classmethod
    def from_ray_error(cls, exc: BaseException) -> RemoteFailure:
        """A failure Ray reported for the attempt itself, such as a dead worker."""
        kind = type(exc)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return cls(f"{kind.__module__}.{kind.__qualname__}", message, "", None, FailureKind.CRASHED)

    @classmethod
    def of_kind(cls, kind: FailureKind, message: str) -> RemoteFailure:
        """A failure rayfn decided (timeout, cancellation...), not an exception."""
        return cls(f"rayfn.{kind.value}", message, "", None, kind)

    @classmethod
    def capture(cls, exc: BaseException, tb: TracebackType | None = None) -> RemoteFailure:
        """Record ``exc``; ``tb`` is the traceback to show (default: the whole one)."""
        tb = tb if tb is not None else exc.__traceback__
        text = user_traceback(exc, tb)
        from ray import cloudpickle  # the executor's: Ray is loaded there anyway

        try:
            pickled: bytes | None = cloudpickle.dumps(exc)
        except Exception:
            pickled = None
        mro = tuple(f"{k.__module__}.{k.__qualname__}" for k in type(exc).__mro__)
        return cls(mro[0], str(exc), text, pickled, mro=mro)


def _internal_folders() -> tuple[str, ...]:
    """Where rayfn's and Ray's own code is installed (frames from there are ours)."""
    names = ("rayfn", "rayfn.runtime", "rayfn.serve", "ray")
    found = (getattr(sys.modules.get(name), "__file__", None) for name in names)
    return tuple(os.path.dirname(path) + os.sep for path in found if path)


def user_traceback(
    exc: BaseException, tb: TracebackType | None, _seen: set[int] | None = None
) -> str:
    """``exc``'s traceback as text (with the exceptions it was raised from), without
    the frames of rayfn, Ray or Python's import machinery: what a caller sees of a
    remote failure is about their code, and shows no paths of where rayfn is
    installed."""
    seen = _seen if _seen is not None else set()
    seen.add(id(exc))
    chained = ""
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        chained = user_traceback(exc.__cause__, exc.__cause__.__traceback__, seen)
        chained += "\nThe above exception was the direct cause of the following exception:\n\n"
    elif (
        exc.__context__ is not None
        and not exc.__suppress_context__
        and id(exc.__context__) not in seen
    ):
        chained = user_traceback(exc.__context__, exc.__context__.__traceback__, seen)
        chained += "\nDuring handling of the above exception, another exception occurred:\n\n"
    internal = _internal_folders()
    frames = [
        frame
        for frame in traceback.extract_tb(tb)
        if not frame.filename.startswith(internal) and not frame.filename.startswith("<frozen")
    ]
    text = "".join(traceback.format_exception_only(type(exc), exc))
    if frames:
        text = (
            "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + text
        )
    return chained + text


@dataclass(frozen=True)
class AttemptMeta:
    """The small first return of every task: how the attempt went, with the result
    itself when it pickles small (``inline``); a large result is the task's second
    return instead, left in the object store for the caller to fetch."""

    ok: bool
    started_at: float
    finished_at: float
    inline: bytes | None = None  # the pickled result, when small
    failure: RemoteFailure | None = None  # set when not ok


class StreamEnd(NamedTuple):
    """The last thing a generator call's task yields: how the attempt went (its
    values went before it, one Ray object each)."""

    meta: AttemptMeta


@dataclass(frozen=True)
class CallOutcome:
    """The registry's answer to ``get``: a status and, when finished, the result
    (``inline`` bytes or a ``payload`` ref) or why it failed (``failure``)."""

    status: CallStatus | None  # None: the id was never accepted
    payload: ray.ObjectRef[object] | None = None  # a large result, in the object store
    failure: RemoteFailure | None = None
    inline: bytes | None = None  # a small result, pickled
    expires_at: float | None = None  # when a finished call's result ages out
