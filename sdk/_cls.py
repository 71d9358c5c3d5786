"""``@app.cls``: Modal's classes with a lifecycle. Each container is a Ray actor that
builds one instance of the class and runs its ``@enter`` methods once; method calls
(``Model().predict.spawn(x)``) are queued and routed to the class's pool of
containers by the registry (runtime/containers.py).

    @app.cls(gpu="A100", max_containers=4, scaledown_window=60)
    class Model:
        @rayfn.enter()
        def load(self): self.weights = ...
        @rayfn.method()
        def predict(self, x): ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from rayfn import _connection, _output
from rayfn._checks import check_name, marker
from rayfn._web import web_endpoint_of
from rayfn.exception import InvalidError, NotFoundError
from rayfn.runtime.containers import ENTER_MARK, EXIT_MARK
from rayfn.runtime.identity import app_of
from rayfn.runtime.records import NotDeployed

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")

METHOD_MARK = "__rayfn_method__"
MAX_INPUTS_MARK = "__rayfn_max_inputs__"
BATCH_MARK = "__rayfn_batched__"  # (max_batch_size, wait_ms)
MAX_BATCH_SIZE = 1000


def _marker(mark: str, what: str) -> Callable[[F], F]:
    return marker(mark, True, f"@rayfn.{what}() decorates methods")


def enter(*, snap: bool = False) -> Callable[[F], F]:
    """Mark a method to run once when a container starts (load a model...)."""
    return _marker(ENTER_MARK, "enter")


def exit() -> Callable[[F], F]:  # Modal's name
    """Mark a method to run when a container stops."""
    return _marker(EXIT_MARK, "exit")


def method(*, is_generator: bool | None = None) -> Callable[[F], F]:
    """Mark a method callable remotely: ``Model().predict.remote(x)`` (a generator
    method: ``.remote_gen(x)``; ``is_generator`` overrides what its ``def`` says)."""
    # The mark's value: None (decide from the def), or is_generator as given.
    return marker(METHOD_MARK, (is_generator,), "@rayfn.method() decorates methods")


def concurrent(*, max_inputs: int, target_inputs: int | None = None) -> Callable[[C], C]:
    """Let one container serve up to ``max_inputs`` calls at once. On a class, its
    methods run in threads of the container actor; on a function, each call reserves
    1/``max_inputs`` of the function's cpu, memory and GPUs (``max_containers`` counts
    containers of ``max_inputs`` calls), and a web function's replica takes that many
    requests at once. ``target_inputs`` is accepted; Ray's scheduler places the calls."""
    if isinstance(max_inputs, bool) or not isinstance(max_inputs, int) or max_inputs < 1:
        raise InvalidError(f"max_inputs must be a whole number >= 1, got {max_inputs!r}.")

    def decorate(target: C) -> C:
        if isinstance(target, Cls) or hasattr(target, "spawn"):
            raise InvalidError(
                "Put @rayfn.concurrent(...) below @app.cls(...) or @app.function(...)."
            )
        if not inspect.isclass(target) and not callable(target):
            raise InvalidError("@rayfn.concurrent(...) decorates a class or a function.")
        setattr(target, MAX_INPUTS_MARK, max_inputs)
        return target

    return decorate


def batched(*, max_batch_size: int, wait_ms: int) -> Callable[[F], F]:
    """Let the cluster hand a function (or ``@method``) up to ``max_batch_size`` calls
    at once: each parameter gets a list (one value per call) and it returns a list (one
    result per call); callers still pass and get one value each. A batch goes once it
    is full, or ``wait_ms`` after its first call arrived; if the function raises, every
    call of the batch fails with that.

    Example:
        >>> @app.function()
        ... @rayfn.batched(max_batch_size=8, wait_ms=100)
        ... def embed(texts: list[str]) -> list[list[float]]: ...
        >>> embed.remote("one text")
    """
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
        raise InvalidError(f"max_batch_size must be a whole number, got {max_batch_size!r}.")
    if not 1 <= max_batch_size <= MAX_BATCH_SIZE:
        raise InvalidError(f"max_batch_size must be 1 to {MAX_BATCH_SIZE}, got {max_batch_size}.")
    if isinstance(wait_ms, bool) or not isinstance(wait_ms, int) or not 0 <= wait_ms <= 600_000:
        raise InvalidError(f"wait_ms must be a whole number of ms, 0 to 600000, got {wait_ms!r}.")
    return marker(BATCH_MARK, (max_batch_size, wait_ms), "@rayfn.batched() decorates functions")


def methods_of(user_cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in inspect.getmembers(user_cls, inspect.isfunction)
        if getattr(member, METHOD_MARK, False)
    }


def web_methods_of(user_cls: type) -> dict[str, Callable[..., Any]]:
    """Methods under a web decorator (``@fastapi_endpoint``, ``@asgi_app``...)."""
    return {
        name: member
        for name, member in inspect.getmembers(user_cls, inspect.isfunction)
        if web_endpoint_of(member) is not None
    }


class Cls:
    """A class registered with ``@app.cls``, or looked up with ``Cls.from_name``.
    Calling it gives an object whose methods are ``Function``s."""

    def __init__(
        self, app_name: str, name: str, methods: dict[str, Any] | None, code: type | None = None
    ) -> None:
        self._app_name = app_name
        self._name = name
        self._methods = methods  # name -> Function; None when looked up by name
        self._code = code  # the user's class, where it was defined here
        # with_options: (the class it varies, option changes); the deployment the
        # variant was made for, and its name there.
        self._variant: tuple[Cls, dict[str, Any]] | None = None
        self._variant_for: str | None = None
        self._variant_name = name

    @property
    def __rayfn_code__(self) -> Any:
        """The user's class, for a worker importing its module (runtime/sources.py)."""
        return self._code if self._code is not None else self

    @classmethod
    def from_name(cls, app_name: str, name: str, *, environment_name: str | None = None) -> Cls:
        """A deployed class; its methods are looked up on first use.
        ``environment_name`` is accepted: a rayfn cluster has one environment."""
        _output.follower.note_deployed(app_name)
        return cls(check_name("app", app_name), check_name("function", name), None)

    def __call__(self, *args: Any, **kwargs: Any) -> _Instance:
        if args or kwargs:
            raise InvalidError(
                f"{self._name}() takes no arguments on rayfn: containers build the class "
                "with no arguments (set state in an @rayfn.enter() method)."
            )
        return _Instance(self)

    def with_options(self, **options: Any) -> Cls:
        """This class with other options for its containers (as
        ``Function.with_options``): a pool of its own, made on the first call.

        Example:
            >>> Model.with_options(gpu="A100")().predict.remote(x)
        """
        from rayfn._options import option_changes
        from rayfn.config import settings

        changes = option_changes(options, default_result_ttl=settings().result_ttl)
        base, earlier = self._variant or (self, {})
        variant = Cls(self._app_name, self._name, None)
        variant._variant = (base, {**earlier, **changes})
        return variant

    def _target(self) -> str:
        """The deployment this class's calls go to (a local one's: its app's run, if
        it runs)."""
        if self._methods:
            return str(next(iter(self._methods.values()))._target)
        return self._app_name

    def _variant_method(self, name: str) -> Any:
        from rayfn._function import Function

        assert self._variant is not None
        base, changes = self._variant
        target = base._target()
        if self._variant_for != target:
            found = _connection.control().add_variant(target, base._name, changes).result()
            if isinstance(found, NotDeployed):
                raise NotFoundError(found.message())
            self._variant_name, self._variant_for = found, target
        return Function(app_of(target), f"{self._variant_name}.{name}", deployment=target)

    def _method(self, name: str) -> Any:
        from rayfn._function import Function

        if self._variant is not None:
            return self._variant_method(name)
        if self._methods is not None:
            found = self._methods.get(name)
            if found is None:
                raise AttributeError(
                    f"{self._name} has no @rayfn.method() {name!r} "
                    f"(it has: {', '.join(self._methods) or 'none'})."
                )
            return found
        function = Function.from_name(self._app_name, f"{self._name}.{name}")
        try:
            function.hydrate()
        except NotFoundError:
            raise AttributeError(f"{self._app_name}.{self._name} has no method {name!r}.") from None
        return function

    def __repr__(self) -> str:
        return f"Cls({self._app_name!r}, {self._name!r})"


class _Instance:
    """``Model()``: its attributes are the class's remote methods."""

    def __init__(self, cls: Cls) -> None:
        self._cls = cls

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._cls._method(name)
