"""Checking a call's arguments against the function's signature before anything is
sent: a wrong argument count is the caller's mistake, reported at once, not a failed
call discovered later."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from rayfn.exception import InvalidError
from rayfn.runtime.records import Parameter

_HAS_DEFAULT = object()  # stands for a default value we do not ship


def parameters_of(fn: Callable[..., Any]) -> tuple[Parameter, ...] | None:
    """The parameters of ``fn``, or None when it has no inspectable signature."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return tuple(
        Parameter(p.name, int(p.kind), p.default is not inspect.Parameter.empty)
        for p in signature.parameters.values()
    )


@functools.lru_cache(maxsize=1024)
def _signature(parameters: tuple[Parameter, ...]) -> inspect.Signature:
    """A signature to bind against, built once per function (calls are a hot path)."""
    return inspect.Signature(
        [
            inspect.Parameter(
                p.name,
                inspect._ParameterKind(p.kind),
                default=_HAS_DEFAULT if p.has_default else inspect.Parameter.empty,
            )
            for p in parameters
        ]
    )


def check_arguments(
    qualname: str,
    shown: str,
    parameters: tuple[Parameter, ...] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Raise ``InvalidError`` if ``args``/``kwargs`` cannot bind to ``parameters``;
    the message shows the signature as ``shown`` (e.g. ``"(data, retries=3)"``)."""
    if parameters is None:
        return
    try:
        _signature(parameters).bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidError(f"{qualname}{shown} cannot take these arguments: {exc}.") from None
