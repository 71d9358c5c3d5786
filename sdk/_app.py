"""``App``: a named group of functions, deployed together."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from typing_extensions import Unpack

from rayfn import _connection, _output, _progress
from rayfn._checks import check_name
from rayfn._cls import MAX_INPUTS_MARK, METHOD_MARK, Cls, methods_of, web_methods_of
from rayfn._function import Function
from rayfn._image import Image
from rayfn._options import (
    DecoratorOptions,
    all_secrets,
    batching,
    check_pool,
    function_options,
    streaming,
)
from rayfn._schedules import Cron, Period
from rayfn._secret import Secret, inline_secrets, required_keys
from rayfn._serialization import dumps_code
from rayfn._web import web_endpoint_of
from rayfn.config import settings
from rayfn.exception import InvalidError, NotFoundError
from rayfn.runtime import sources
from rayfn.runtime.clients import ControlClient
from rayfn.runtime.identity import DeploymentKey, app_of
from rayfn.runtime.records import AppInfo, AppSpec, ContainerOptions, FunctionSpec, ImageSpec

logger = logging.getLogger(__name__)

F = Callable[..., Any]


class App:
    """A named group of functions and entrypoints.

    Example:
        >>> app = rayfn.App("my-job-queue")
        >>> @app.function(result_ttl=600)
        ... def process_job(data):
        ...     return {"result": data}
        >>> app.deploy()               # or: rayfn deploy my_job_queue.py
    """

    def __init__(self, name: str | None = None, *, image: Image | None = None) -> None:
        if name is not None:
            check_name("app", name)
        if image is not None and not isinstance(image, Image):
            raise InvalidError(f"image must be a rayfn.Image, got {type(image).__name__}.")
        self._name = name
        self._image = image
        self._functions: dict[str, Function] = {}
        self._entrypoints: dict[str, F] = {}
        self._inline_secrets: dict[str, dict[str, str]] = {}  # Secret.from_dict values
        self._required_keys: dict[str, set[str]] = {}  # Secret.from_name(required_keys=)
        self._ephemeral_key: str | None = None
        # On a worker importing the module that defines it: the deployment it is there.
        self._deployed_as = _deployment_importing(name)
        self._ephemeral_info: AppInfo | None = None  # what the cluster made of the run
        self.source = ""  # the file the app was loaded from, when the CLI loaded it

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def image(self) -> Image | None:
        return self._image

    @property
    def registered_functions(self) -> dict[str, Function]:
        return dict(self._functions)

    @property
    def registered_entrypoints(self) -> dict[str, F]:
        return dict(self._entrypoints)

    @property
    def ephemeral_info(self) -> AppInfo | None:
        """The running app as the cluster deployed it (its images' runtime envs)."""
        return self._ephemeral_info if self._ephemeral_key is not None else None

    @property
    def ephemeral_key(self) -> str | None:
        """The key of the ephemeral deployment while ``app.run()`` is active (on a
        worker, the one whose code it runs)."""
        return self._ephemeral_key or self._deployed_as

    # -- decorators ----------------------------------------------------------------------

    @overload
    def function(self, _fn: F) -> Function: ...

    @overload
    def function(
        self,
        _fn: None = None,
        *,
        concurrency_limit: int | None = None,
        schedule: Period | Cron | None = None,
        name: str | None = None,
        is_generator: bool | None = None,
        **options: Unpack[DecoratorOptions],
    ) -> Callable[[F], Function]: ...

    def function(
        self,
        _fn: F | None = None,
        *,
        concurrency_limit: int | None = None,
        schedule: Period | Cron | None = None,
        name: str | None = None,
        is_generator: bool | None = None,
        **options: Unpack[DecoratorOptions],
    ) -> Function | Callable[[F], Function]:
        """Register a function to run on the cluster; works with or without ``()``.

        Args:
            cpu: CPU cores the call reserves (Ray ``num_cpus``; default 1).
            memory: MiB of memory the call reserves (Ray ``memory``).
            gpu: ``"A100"``, ``"H100:2"``, ``"any"``, or a list of fallbacks (Ray
                ``num_gpus`` and ``accelerator_type``).
            retries: how many times a failed attempt is retried (an int: 1 s apart),
                or a ``rayfn.Retries`` with backoff. Calls run at least once.
            timeout: seconds an attempt may run (default 300); past it the attempt
                is stopped and counts as failed.
            startup_timeout: seconds a call may wait to start (e.g. for a GPU node)
                before it fails with ``StartupTimeoutError``; default: forever.
            max_containers: at most this many calls of the function run at once;
                the rest wait in submit order. ``concurrency_limit`` is its old name.
            result_ttl: seconds a finished call's result is kept (default
                ``RAYFN_RESULT_TTL``, else 3600).
            secrets: ``rayfn.Secret``s whose keys become environment variables
                of each call.
            image: a ``rayfn.Image`` of its own (default: the app's).
            schedule: ``rayfn.Period(...)`` or ``rayfn.Cron("...")``: the deployed
                function also runs by itself (with no arguments); a tick is skipped
                while the previous one still runs.
            name: the function's name in the app (default: its ``__name__``).
            is_generator: whether its calls stream what it yields (default: whether
                it is a generator function); call it with ``remote_gen``.

        Raises:
            InvalidError: an option is out of range, or the name is taken.
        """
        if concurrency_limit is not None:
            max_containers = options.get("max_containers")
            if max_containers is not None and max_containers != concurrency_limit:
                raise InvalidError("Give max_containers or concurrency_limit, not both.")
            options["max_containers"] = concurrency_limit
        checked = function_options(
            default_result_ttl=settings().result_ttl, schedule=schedule, **options
        )
        inline = inline_secrets(all_secrets(options))

        def register(fn: F) -> Function:
            if isinstance(fn, Function):
                raise InvalidError(f"{fn.qualname} is already an app function.")
            if not callable(fn):
                raise InvalidError(f"@app.function() decorates functions, not {fn!r}.")
            fn_name = check_name("function", name or fn.__name__)
            if fn_name in self._functions:
                raise InvalidError(f"App {self._name!r} already has a function {fn_name!r}.")
            inputs = getattr(fn, MAX_INPUTS_MARK, 1)  # @rayfn.concurrent below this
            function = Function(
                self._name or "",
                fn_name,
                raw=fn,
                options=batching(
                    streaming(
                        dataclasses.replace(checked, concurrent_inputs=inputs), fn, is_generator
                    ),
                    fn,
                ),
                app=self,
                web=web_endpoint_of(fn),
                image=options.get("image"),
            )
            self._functions[fn_name] = function
            self._inline_secrets.update(inline)
            self._require(all_secrets(options))
            return function

        return register(_fn) if _fn is not None else register

    def cls(
        self,
        _cls: type | None = None,
        *,
        min_containers: int = 0,
        scaledown_window: float = 60.0,
        name: str | None = None,
        **options: Unpack[DecoratorOptions],
    ) -> Any:
        """Register a class whose ``@rayfn.method()``s run in containers: Ray actors
        that each build one instance and run its ``@rayfn.enter()`` methods once. The
        pool grows with the backlog up to ``max_containers`` and shrinks to
        ``min_containers`` after ``scaledown_window`` seconds idle. Options as for
        ``function`` (``cpu``/``gpu``/``memory`` are per container).

        Raises:
            InvalidError: an option is out of range, or the class has no method.
        """
        max_containers = options.get("max_containers")
        check_pool(min_containers, max_containers, scaledown_window)
        base = function_options(
            default_result_ttl=settings().result_ttl, decorator="cls", **options
        )
        inline = inline_secrets(all_secrets(options))
        secrets = all_secrets(options)
        image = options.get("image")

        def register(user_cls: type) -> Cls:
            if not isinstance(user_cls, type):
                raise InvalidError(f"@app.cls() decorates classes, not {user_cls!r}.")
            cls_name = check_name("function", name or user_cls.__name__)
            methods = methods_of(user_cls)
            web = web_methods_of(user_cls)
            if not methods and not web:
                raise InvalidError(
                    f"{cls_name} has no @rayfn.method() and no web endpoint; nothing could call it."
                )
            for method_name, fn in web.items():  # each served by replicas of its own
                qualified = f"{cls_name}.{method_name}"
                if qualified in self._functions:
                    raise InvalidError(f"App {self._name!r} already has {qualified!r}.")
                self._functions[qualified] = Function(
                    self._name or "",
                    qualified,
                    raw=fn,
                    options=base,
                    app=self,
                    web=web_endpoint_of(fn),
                    code=user_cls,
                    image=image,
                )
            max_inputs = getattr(user_cls, MAX_INPUTS_MARK, 1)
            handles = {}
            for method_name, fn in methods.items():
                qualified = f"{cls_name}.{method_name}"
                if qualified in self._functions:
                    raise InvalidError(f"App {self._name!r} already has {qualified!r}.")
                container = ContainerOptions(
                    class_name=cls_name,
                    method=method_name,
                    min_containers=min_containers,
                    max_containers=max_containers,
                    scaledown_window=float(scaledown_window),
                    max_inputs=max_inputs,
                )
                # max_containers counts containers here, not calls: the pool applies it.
                options = batching(
                    streaming(
                        dataclasses.replace(base, container=container, max_containers=None),
                        fn,
                        getattr(fn, METHOD_MARK)[0],  # @method(is_generator=...)
                    ),
                    fn,
                )
                handles[method_name] = self._functions[qualified] = Function(
                    self._name or "",
                    qualified,
                    raw=fn,
                    options=options,
                    app=self,
                    code=user_cls,
                    image=image,
                )
            self._inline_secrets.update(inline)
            self._require(secrets)
            return Cls(self._name or "", cls_name, handles, user_cls)

        return register(_cls) if _cls is not None else register

    def _require(self, secrets: Sequence[Secret]) -> None:
        for name, keys in required_keys(secrets).items():
            self._required_keys.setdefault(name, set()).update(keys)

    def local_entrypoint(self, _fn: F | None = None, *, name: str | None = None) -> Any:
        """Register the function ``rayfn run FILE`` calls locally. Its parameters become
        command-line options: ``def main(n: int = 3)`` takes ``--n 5``."""

        def register(fn: F) -> F:
            entry_name = name or fn.__name__
            if entry_name in self._entrypoints:
                raise InvalidError(f"App {self._name!r} already has an entrypoint {entry_name!r}.")
            self._entrypoints[entry_name] = fn
            return fn

        return register(_fn) if _fn is not None else register

    # -- deploying -----------------------------------------------------------------------

    def deploy(self, name: str | None = None) -> AppInfo:
        """Deploy the app so ``Function.from_name`` finds it from any process; a
        deploy of the same name replaces it (calls already running finish). Web
        functions go on Ray Serve (``Function.get_web_url()`` says where).

        Raises:
            InvalidError: the app has no name, or a web function would be served
                under a path the job API reserves (``/v1``, ``/docs``...).
        """
        app_name = check_name("app", name or self._name)
        if self._name is None:
            self._name = app_name
        spec = self._spec(app_name)
        _check_secrets(spec, self._required_keys)
        _check_images(spec)
        web = [f for f in self._functions.values() if f.web is not None]
        if web:
            # Imported here: a process that only submits work never loads Ray Serve.
            from rayfn._web_hosting import check_routes

            check_routes(app_name, self._functions)  # before anything is deployed
        registered = _progress.step(f"register {app_name}", 1)
        info, previous = _connection.control().deploy(spec).result()
        registered(1)
        if web:
            from rayfn._web_hosting import deploy_web_functions

            served = _progress.step(f"serve {len(web)} web functions", 1)
            try:
                deploy_web_functions(app_name, self._functions, deployed=info)
            except BaseException:
                _roll_back(app_name, info.version)  # all or nothing
                raise
            served(1)
        if previous is not None and previous.source and previous.source != self.source:
            logger.warning(
                "App %r from %s replaces the one deployed from %s.",
                app_name,
                self.source or "<python>",
                previous.source,
            )
        return info

    @contextlib.contextmanager
    def run(self, *, detach: bool = False) -> Iterator[App]:
        """Run the app ephemerally for the duration of the block: its functions are
        callable without a deploy, a deployed app of the same name is untouched, and
        what its calls print shows here. At the end of the block its unfinished calls
        are cancelled; with ``detach``, they run on, and the app stops once they end.
        If this process dies, the cluster stops the app ``RAYFN_CLIENT_GRACE`` seconds
        (default 30) after its last heartbeat, cancelling its calls.

        Example:
            >>> with app.run():
            ...     print(process_job.remote("data"))
        """
        if self._ephemeral_key is not None:
            raise InvalidError(f"App {self._name!r} is already running.")
        # Set before pickling, so functions that call each other call this deployment.
        self._ephemeral_key = key = str(DeploymentKey.new_run(self._name or "ephemeral"))
        control = _connection.control()
        grace = settings().client_grace
        try:
            spec = dataclasses.replace(self._spec(key, ephemeral=True), client_grace=grace)
            _check_secrets(spec, self._required_keys)
            _check_images(spec)
            info, _ = control.deploy(spec).result()
        except BaseException:
            self._ephemeral_key = None
            raise
        self._ephemeral_info = info
        try:
            with (
                _heartbeat(control, key, grace / 4),
                _output.follower.following(key),
                _web_served(self._name or "ephemeral", self._functions, info),
            ):
                yield self
        finally:
            self._ephemeral_key = None
            left = control.end_run(key, detach).result()
            if left and detach:
                logger.warning("%s runs on detached with %d unfinished calls.", key, left)
            elif left:
                logger.warning(
                    "Cancelled %d calls of %s still running when its run ended "
                    "(`rayfn run --detach`, or `app.run(detach=True)`, keeps them).",
                    left,
                    key,
                )

    def _spec(self, key: str, ephemeral: bool = False) -> AppSpec:
        functions = {}
        pickled = _progress.step(f"pickle {len(self._functions)} functions", len(self._functions))
        max_result_bytes = settings().max_result_bytes  # the workers check it, per call
        images: dict[Image, ImageSpec] = {}  # each image's uploads once

        def image_spec(image: Image | None) -> ImageSpec | None:
            if image is None:
                return None
            if image not in images:
                images[image] = image.spec()
            return images[image]

        for fn_name, function in self._functions.items():
            raw, options = function.definition()
            options = dataclasses.replace(options, max_result_bytes=max_result_bytes)
            functions[fn_name] = FunctionSpec(
                name=fn_name,
                code=dumps_code(function.code or raw, key),
                options=options,
                signature=function.signature,
                web=function.web,
                parameters=function.local_parameters,
                image=image_spec(function.image),
            )
            pickled(1)
        return AppSpec(
            name=key,
            functions=functions,
            source=self.source,
            ephemeral=ephemeral,
            image=image_spec(self._image),
            inline_secrets=dict(self._inline_secrets),
        )

    def __repr__(self) -> str:
        return f"App({self._name!r})"

    def __reduce__(self) -> tuple[type[App], tuple[str | None]]:
        # Shipped inside a function's globals, an app is just its name: its functions
        # travel on their own.
        return (App, (self._name,))


@contextlib.contextmanager
def _web_served(app_name: str, functions: dict[str, Function], info: AppInfo) -> Iterator[None]:
    """An app run's web functions served for the run (at ``/<app>-dev/...``), as
    ``modal run`` serves them."""
    if not any(f.web is not None for f in functions.values()):
        yield
        return
    # Imported here: a process that only submits work never loads Ray Serve.
    from rayfn._web_hosting import delete_web_functions, deploy_web_functions

    try:
        deploy_web_functions(app_name, functions, deployed=info, dev=True)
        yield
    finally:
        delete_web_functions(app_name, dev=True)


def _deployment_importing(name: str | None) -> str | None:
    """The deployment an ``App`` of this name is, when a worker is importing its module."""
    key = sources.importing_deployment()
    if key is None or (name is not None and app_of(key) != name):
        return None
    return key


def _roll_back(app_name: str, version: int) -> None:
    """Put back what a deploy replaced, its web functions included, or remove
    everything of a first deploy."""
    from rayfn._web_hosting import delete_web_functions, deploy_web_functions

    try:
        restored = _connection.control().roll_back(app_name, version).result()
        if restored is None:
            delete_web_functions(app_name)
        else:
            spec, info = restored
            deploy_web_functions(app_name, spec.functions, deployed=info)
    except Exception as exc:  # the deploy's own error is the one to report
        logger.warning("Putting back what was deployed of %r failed: %s", app_name, exc)


@contextlib.contextmanager
def _heartbeat(control: ControlClient, key: str, every: float) -> Iterator[None]:
    """Tell the control actor every ``every`` seconds that this process still runs
    ephemeral app ``key``: without it, the cluster stops the app."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                alive = control.heartbeat(key).within(every).result()
            except Exception:  # a restarting control actor misses a beat or two
                continue
            if not alive:
                logger.warning("%s was stopped by the cluster (no heartbeat for too long).", key)
                return

    threading.Thread(target=beat, name="rayfn-heartbeat", daemon=True).start()
    try:
        yield
    finally:
        stop.set()


def _check_images(spec: AppSpec) -> None:
    """What the cluster cannot do of the app's images fails the deploy, before anything
    is deployed.

    Raises:
        InvalidError: the first thing, in a sentence that says what to do.
    """
    images = [(f"App {app_of(spec.name)!r}", spec.image)] if spec.image else []
    images += [(f"{app_of(spec.name)}.{n}", f.image) for n, f in spec.functions.items() if f.image]
    if not images:
        return
    problems = _connection.control().image_problems(images).result()
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidError(problems[0] + more)


def _check_secrets(spec: AppSpec, required: dict[str, set[str]]) -> None:
    """Named secrets must exist before a deploy that needs them, with the keys
    ``required`` of each.

    Raises:
        NotFoundError: names the missing secrets (or keys) and how to create them.
    """
    named = {
        name
        for function in spec.functions.values()
        for name in (
            *function.options.secrets,
            *([function.options.webhook.secret] if function.options.webhook else []),
        )
        if name not in spec.inline_secrets
    }
    if not named:
        return
    missing = _connection.control().missing_secrets(sorted(named)).result()
    if missing:
        raise NotFoundError(
            f"Secret {missing[0]!r} does not exist; create it with "
            f"`rayfn secret create {missing[0]} KEY=VALUE ...`"
            + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
            + "."
        )
    if any(required.get(name) for name in named):
        has = dict(_connection.control().list_secrets().result())
        for name in sorted(named):
            lacking = sorted(required.get(name, set()) - set(has.get(name, ())))
            if lacking:
                raise NotFoundError(
                    f"Secret {name!r} has no key {', '.join(lacking)} (required_keys); add "
                    f"it with `rayfn secret create {name} {lacking[0]}=... ` and its other keys."
                )
