"""``Function``: a function that runs remotely, defined here or looked up by name."""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rayfn import _connection, _output, _progress
from rayfn._aio import Steps, aio_method, in_thread, run_steps
from rayfn._arguments import check_arguments, parameters_of
from rayfn._checks import check_name
from rayfn._function_call import FunctionCall, stream_results, stream_values
from rayfn._options import call_options, option_changes
from rayfn._serialization import dumps_args
from rayfn._spawner import accepted_id, spawn_token, spawner
from rayfn.config import settings
from rayfn.exception import InvalidError, NotFoundError, NotSupportedError
from rayfn.runtime.clients import Reply
from rayfn.runtime.constants import SPAWN_BATCH_SIZE
from rayfn.runtime.executor import current_call_id
from rayfn.runtime.identity import DeploymentKey, app_of
from rayfn.runtime.protocol import CallOptions, Submission
from rayfn.runtime.records import FunctionInfo, FunctionOptions, NotDeployed, Parameter, WebEndpoint

if TYPE_CHECKING:
    from rayfn._app import App
    from rayfn._image import Image

# Results fetched per registry round trip when map() yields in order.
_RESULT_CHUNK = 256


class Function:
    """A function that runs on the cluster.

    Made by ``@app.function()`` or found with ``Function.from_name(app, name)``.

    Example:
        >>> f = rayfn.Function.from_name("my-job-queue", "process_job")
        >>> f.remote("data")         # run, wait, return the value
        >>> call = f.spawn("data")   # run in the background; call.object_id is its id
    """

    def __init__(
        self,
        app_name: str,
        name: str,
        *,
        raw: Callable[..., Any] | None = None,
        options: FunctionOptions | None = None,
        app: App | None = None,
        deployment: str | None = None,
        web: WebEndpoint | None = None,
        code: Any = None,
        image: Image | None = None,
    ) -> None:
        self.web = web  # set when the function is served over HTTP
        self.image = image  # its own, if it has one (else its app's)
        # What deploy pickles: the function itself, or (a method) its class.
        self.code = code if code is not None else raw
        self._app_name = app_name
        self._deployment = deployment  # a fixed deployment key, set when unpickled
        self._name = name
        self._raw = raw
        self._options = options
        self._app = app
        self._info: FunctionInfo | None = None
        self._accepted_by: set[str] = set()  # deployments that accepted a call of it
        # with_options: (the function's own name, option changes), and the deployment
        # the variant was made for (its name is then the variant's).
        self._pinned: int | None = None  # from_name(version=): the only version it calls
        # with_options(priority=, delay=, idempotency_key=...): sent with each spawn
        self._call_options: CallOptions | None = None
        self._variant: tuple[str, dict[str, Any]] | None = None
        self._variant_for: str | None = None
        self._local_parameters = parameters_of(raw) if raw is not None else None
        self._local_signature = _signature_text(raw) if raw is not None else None
        if code is not None and raw is not None:  # a method: callers do not pass self
            self._local_parameters = (self._local_parameters or ())[1:]
            self._local_signature = _signature_text(raw, drop_first=True)
        if raw is not None:
            self.__doc__ = raw.__doc__
            self.__wrapped__ = raw

    @property
    def __rayfn_code__(self) -> Any:
        """What a worker importing this function's module runs (runtime/sources.py)."""
        return self.code

    # -- lookup --------------------------------------------------------------------------

    @classmethod
    def from_name(
        cls,
        app_name: str,
        name: str,
        *,
        environment_name: str | None = None,
        version: int | None = None,
    ) -> Function:
        """A handle on a deployed function. Lazy: an unknown name raises
        ``NotFoundError`` on first use. ``lookup`` is the eager form.
        ``environment_name`` is accepted: a rayfn cluster has one environment. With
        ``version``, the handle works only while that version of the app is the one
        deployed (a cluster runs an app's current version): else ``NotFoundError``.

        Raises:
            InvalidError: ``version`` is not a whole number from 1.
        """
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise InvalidError(f"version must be a whole number from 1, got {version!r}.")
        _output.follower.note_deployed(app_name)
        function = cls(check_name("app", app_name), check_name("function", name))
        function._pinned = version
        return function

    @classmethod
    def lookup(cls, app_name: str, name: str) -> Function:
        """A handle on a deployed function, checked now (Modal's older name).

        Raises:
            NotFoundError: the app or function is not deployed; the message lists
                what is.
        """
        function = cls.from_name(app_name, name)
        function.hydrate()
        return function

    @aio_method
    def hydrate(self) -> Steps[Function]:
        """Check with the cluster that this function is deployed (and learn its
        signature, so calls with the wrong arguments are refused before they run).

        Raises:
            NotFoundError: it is not.
        """
        return self._hydrated(
            (yield _connection.control().describe_function(self._target, self._name))
        )

    def _describe(self) -> Reply[FunctionInfo | NotDeployed]:
        return _connection.control().describe_function(self._target, self._name)

    def _hydrated(self, found: FunctionInfo | NotDeployed) -> Function:
        if isinstance(found, NotDeployed):
            raise NotFoundError(found.message())
        if self._pinned is not None and found.version != self._pinned:
            raise NotFoundError(
                f"{self.qualname} version {self._pinned} is not deployed: the app runs "
                f"version {found.version} (a cluster runs an app's current version)."
            )
        self._info = found
        return self

    def _parameters(self) -> tuple[Parameter, ...] | None:
        """The parameters to check arguments against: from the local code, else from
        the deployed function (looked up once per handle)."""
        if self._raw is not None:
            return self._local_parameters
        if self._info is None:
            self.hydrate()
        assert self._info is not None
        return self._info.parameters

    # -- calling -------------------------------------------------------------------------

    @aio_method
    def spawn(self, *args: Any, **kwargs: Any) -> Steps[FunctionCall]:
        """Start a call and return its ``FunctionCall``. From async code:
        ``await f.spawn.aio(...)``.

        Spawns from one process are coalesced: this returns as soon as the call is
        queued for the registry, and reading ``.object_id`` (or ``get``, ``status``,
        pickling the handle) waits until the registry holds it, so an id is never
        handed out for a call that could still be lost. Calls reach the registry in
        the order they were spawned, and a process flushes its queue on exit.

        Raises:
            NotFoundError: the function is not deployed.
            SerializationError: an argument cannot be pickled.
        """
        return (yield from self._spawned(args, kwargs, "spawn"))

    def _spawned(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], how: str
    ) -> Steps[FunctionCall]:
        if self._variant is not None and self._variant_for != self._target:
            yield from self._as_variant()
        if self._raw is None and self._info is None:
            self._hydrated(
                (yield _connection.control().describe_function(self._target, self._name))
            )
        self._check_kind(how)
        check_arguments(self.qualname, self.signature, self._parameters(), args, kwargs)
        blob = dumps_args(self.qualname, args, kwargs)
        _connection.connect()
        target = self._target
        accepted = spawner().submit(target, self._name, blob, self._call_options)
        if target not in self._accepted_by:
            # The first call waits for the registry, so a missing deployment raises here;
            # later ones return at once and share round trips (rayfn/_spawner.py).
            yield accepted
            self._accepted_by.add(target)
        return FunctionCall(accepted)

    @aio_method
    def remote(self, *args: Any, **kwargs: Any) -> Steps[Any]:
        """Run on the cluster, wait, and return the value (or raise the remote error).
        From async code: ``await f.remote.aio(...)``."""
        call = yield from self._spawned(args, kwargs, "remote")
        return (yield from call.get.steps())

    @in_thread
    def remote_gen(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Run a generator function on the cluster and yield its values as it yields
        them; then raise what it raised, if it failed. Stopping early cancels the
        call. From async code: ``async for x in f.remote_gen.aio(...)``.

        Raises:
            InvalidError: the function is not a generator function.
        """
        call = run_steps(self._spawned(args, kwargs, "remote_gen"))
        yield from stream_values(call.object_id)

    def _is_generator(self) -> bool:
        """Whether calls stream what the function yields (None: not known yet)."""
        if self._options is not None:
            return self._options.generator
        return self._info is not None and self._info.options.generator

    def _check_kind(self, how: str) -> None:
        """Refuse a call of a generator function that is not ``remote_gen``, and the
        other way round, as Modal does."""
        stream = how == "remote_gen"
        if self._is_generator() and not stream:
            raise InvalidError(
                f"{self.qualname} is a generator function: it cannot be called with "
                f".{how}(...). Use .remote_gen(...) instead."
            )
        if stream and not self._is_generator():
            raise InvalidError(
                f"{self.qualname} is not a generator function: call it with .remote(...)."
            )

    @in_thread
    def spawn_map(
        self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None
    ) -> list[FunctionCall]:
        """Start one call per element of ``zip(*iterables)`` (with ``kwargs`` added to
        each) and return their ``FunctionCall``s in order; many calls go in each
        round trip. Unlike Modal's, which returns None.

        Raises:
            NotFoundError: the function is not deployed.
            SerializationError: an argument cannot be pickled; nothing was submitted.
        """
        return self._spawn_all([(args, kwargs or {}) for args in zip(*iterables, strict=False)])

    @in_thread
    def map(
        self,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] | None = None,
        order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> Iterator[Any]:
        """Run the function on every element of ``zip(*iterables)`` in parallel and
        yield the results: in input order, or as they finish with
        ``order_outputs=False``. A failure raises, or is yielded as the exception
        with ``return_exceptions=True``.

        Example:
            >>> list(square.map(range(4)))
            [0, 1, 4, 9]
        """
        calls = self.spawn_map(*iterables, kwargs=kwargs)
        outputs = stream_results(
            [c.object_id for c in calls], order_outputs, return_exceptions, _RESULT_CHUNK
        )
        return _progress.track(outputs, f"{self.qualname}.map", len(calls))

    @in_thread
    def starmap(
        self,
        input_iterator: Iterable[Sequence[Any]],
        *,
        kwargs: dict[str, Any] | None = None,
        order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> Iterator[Any]:
        """Like ``map``, but each element is a tuple of positional arguments."""
        calls = self._spawn_all([(tuple(args), kwargs or {}) for args in input_iterator])
        outputs = stream_results(
            [c.object_id for c in calls], order_outputs, return_exceptions, _RESULT_CHUNK
        )
        return _progress.track(outputs, f"{self.qualname}.starmap", len(calls))

    @in_thread
    def for_each(
        self,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] | None = None,
        ignore_exceptions: bool = False,
    ) -> None:
        """Run the function on every element and wait for all, discarding results."""
        for _ in self.map(*iterables, kwargs=kwargs, return_exceptions=ignore_exceptions):
            pass

    def _spawn_all(
        self, inputs: list[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[FunctionCall]:
        options = self._call_options
        if options is not None and options.idempotency_key is not None:
            raise InvalidError(
                f"{self.qualname}: an idempotency key names one call; map and spawn_map "
                "make many (give each its own with with_options(idempotency_key=...))."
            )
        if self._variant is not None and self._variant_for != self._target:
            run_steps(self._as_variant())
        parameters = self._parameters()
        self._check_kind("map")
        for args, kw in inputs:  # all checked before any call is sent
            check_arguments(self.qualname, self.signature, parameters, args, kw)
        blobs = [dumps_args(self.qualname, args, kw) for args, kw in inputs]
        registry = _connection.registry()
        parent = current_call_id()
        calls: list[FunctionCall] = []
        for start in range(0, len(blobs), SPAWN_BATCH_SIZE):
            batch = blobs[start : start + SPAWN_BATCH_SIZE]
            items = [Submission(self._target, self._name, blob, parent, options) for blob in batch]
            for answer in registry.submit(items, spawn_token()).result().answers:
                calls.append(FunctionCall(accepted_id(answer)))
        return calls

    def with_options(self, **options: Any) -> Function:
        """This function with other options for its calls (``cpu``, ``memory``,
        ``gpu``, ``retries``, ``timeout``, ``startup_timeout``, ``max_containers``,
        ``result_ttl``): a variant the cluster queues and limits apart, made on the
        first call. A redeploy of the app drops it: call ``with_options`` again.

        Per-call options (beyond Modal), sent with each call; alone, they make no
        variant:

        - ``idempotency_key`` (1 to 256 characters): a spawn with a key the function
          has seen, and the same arguments, returns that call (no second run) while
          the call or its tombstone is known; other arguments raise ``ConflictError``.
        - ``priority`` (an int, default 0): higher leaves the function's queue first,
          in order of arrival among equals; strict, so a steady stream of higher ones
          holds lower ones back. It orders the calls rayfn holds: those waiting for
          ``max_containers``, a class's containers or a batch.
        - ``delay`` (seconds or a ``timedelta``) or ``at`` (a ``datetime`` or Unix
          time): the call is ``SCHEDULED`` and starts no earlier (cancel works).
        - ``expires_in`` (seconds or a ``timedelta``): a call not started by then
          ends ``EXPIRED_UNSTARTED`` and never runs (``get`` raises
          ``ExpiredUnstartedError``).

        Example:
            >>> big = process_job.with_options(cpu=4, timeout=600)
            >>> big.remote(data)
            >>> urgent = process_job.with_options(priority=10, expires_in=60)
            >>> urgent.spawn(data)

        Raises:
            InvalidError: an option out of range, or one it does not take.
            NotSupportedError: ``image``, ``secrets``, ``volumes``, or a web function.
        """
        if self.web is not None:
            raise NotSupportedError(
                f"with_options on web function {self.qualname} is not supported by rayfn: "
                "its replicas are deployed with the app; deploy another with those options."
            )
        per_call = call_options(options, self._call_options, time.time())
        changes = option_changes(options, default_result_ttl=settings().result_ttl)
        if not changes:  # per-call options only: the same function, not a variant
            same = copy.copy(self)
            same._call_options = per_call
            return same
        base, earlier = self._variant or (self._name, {})
        variant = Function(
            self._app_name,
            base,
            raw=self._raw,
            options=self._options,
            app=self._app,
            deployment=self._deployment,
            code=None if self.code is self._raw else self.code,  # a method's: its class
            image=self.image,
        )
        variant._info = self._info if self._variant is None else None
        variant._variant = (base, {**earlier, **changes})
        variant._call_options = per_call
        return variant

    def _as_variant(self) -> Steps[None]:
        """A ``with_options`` variant: have the cluster make it for the deployment
        calls now go to (once per deployment)."""
        assert self._variant is not None
        base, changes = self._variant
        target = self._target
        found = yield _connection.control().add_variant(target, base, changes)
        if isinstance(found, NotDeployed):
            raise NotFoundError(found.message())
        self._name, self._variant_for = found, target

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Run in this process, as a plain Python call.

        Raises:
            InvalidError: this handle was looked up by name and has no local code.
        """
        if self._raw is None:
            raise InvalidError(
                f"{self.qualname} was looked up by name; only functions defined in this "
                "process can run locally. Use .remote() instead."
            )
        return self._raw(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.local(*args, **kwargs)

    # -- identity ------------------------------------------------------------------------

    @property
    def app_name(self) -> str:
        return self._app_name

    @property
    def name(self) -> str:
        return self._name

    @property
    def qualname(self) -> str:
        return f"{self._app_name}.{self._name}"

    @property
    def options(self) -> FunctionOptions | None:
        return self._options

    def get_web_url(self) -> str | None:
        """The URL a deployed web function is served at (None if not a web function)."""
        if self.web is None:
            return None
        from rayfn._web_hosting import web_url

        # An app's run (`rayfn run`, `rayfn serve`, app.run()) serves its own copy.
        dev = DeploymentKey.parse(self._target).run is not None
        return web_url(self._app_name or app_of(self._target), self._name, self.web, dev=dev)

    def get_web_origin(self) -> str | None:
        """The origin a web function is also served at the root of, as Modal serves
        each on a host of its own (``http://<app>-<function>.localhost:8000``): absolute
        paths in its pages, redirects and ``fetch("/x")`` stay on it. None if not a web
        function. (A rayfn addition: ``get_web_url`` is the path on the shared host.)"""
        if self.web is None:
            return None
        from rayfn._web_hosting import web_origin

        dev = DeploymentKey.parse(self._target).run is not None
        return web_origin(self._app_name or app_of(self._target), self._name, self.web, dev=dev)

    @property
    def local_parameters(self) -> tuple[Parameter, ...] | None:
        """The parameters callers pass (a method's without ``self``)."""
        return self._local_parameters

    def definition(self) -> tuple[Callable[..., Any], FunctionOptions]:
        """The local code and options of a function defined in this process."""
        if self._raw is None or self._options is None:
            raise InvalidError(f"{self.qualname} was looked up by name: it has no local code.")
        return self._raw, self._options

    @property
    def signature(self) -> str:
        if self._local_signature is not None:
            return self._local_signature
        return self._info.signature if self._info else "(...)"

    @property
    def _target(self) -> str:
        """The deployment calls go to: the running ephemeral app, else the deployed one."""
        if self._app is not None and self._app.ephemeral_key is not None:
            return self._app.ephemeral_key
        return self._deployment or self._app_name

    def __repr__(self) -> str:
        return f"Function({self._app_name!r}, {self._name!r})"

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        # Inside a remote function, a reference to another Function of the app calls
        # whichever deployment (ephemeral or deployed) the caller was shipped with.
        return (_rebuild, (self._target, self._name))


def _signature_text(fn: Callable[..., Any], drop_first: bool = False) -> str:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return "(...)"
    if drop_first:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return str(signature)


def _rebuild(target: str, name: str) -> Function:
    return Function(app_of(target), name, deployment=target)
