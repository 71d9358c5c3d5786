"""``Retries``: Modal's retry settings, validated when they are made."""

from __future__ import annotations

import math

from rayfn.exception import InvalidError
from rayfn.runtime.retries import (
    MAX_BACKOFF_COEFFICIENT,
    MAX_DELAY_S,
    MAX_INITIAL_DELAY_S,
    MAX_RETRIES,
    RetryPolicy,
)


class Retries:
    """How a failed call is retried: after ``initial_delay * backoff_coefficient **
    (n - 1)`` seconds before retry n, capped at ``max_delay``.

    Beyond Modal: ``retry_on`` restricts retries to those exception types (a worker
    crash or a timeout is always retried), and ``max_delay`` may be up to an hour.

    Example:
        >>> @app.function(retries=rayfn.Retries(max_retries=3, initial_delay=0.5))
        ... def flaky(): ...
    """

    def __init__(
        self,
        max_retries: int,
        *,
        backoff_coefficient: float = 2.0,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
        retry_on: tuple[type[BaseException], ...] | list[type[BaseException]] = (),
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise InvalidError(f"max_retries must be a whole number, got {max_retries!r}.")
        if not 0 <= max_retries <= MAX_RETRIES:
            raise InvalidError(
                f"max_retries must be between 0 and {MAX_RETRIES}, got {max_retries}."
            )
        _check_range("backoff_coefficient", backoff_coefficient, 1.0, MAX_BACKOFF_COEFFICIENT)
        _check_range("initial_delay", initial_delay, 0.0, MAX_INITIAL_DELAY_S)
        _check_range("max_delay", max_delay, 1.0, MAX_DELAY_S)
        if isinstance(retry_on, type):
            retry_on = (retry_on,)
        for kind in retry_on:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise InvalidError(f"retry_on takes exception classes, got {kind!r}.")
        self.max_retries = max_retries
        self.backoff_coefficient = float(backoff_coefficient)
        self.initial_delay = float(initial_delay)
        self.max_delay = float(max_delay)
        self.retry_on = tuple(retry_on)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.max_retries,
            backoff_coefficient=self.backoff_coefficient,
            initial_delay=self.initial_delay,
            max_delay=self.max_delay,
            retry_on=tuple(f"{k.__module__}.{k.__qualname__}" for k in self.retry_on),
        )

    def __repr__(self) -> str:
        return (
            f"Retries(max_retries={self.max_retries}, backoff_coefficient="
            f"{self.backoff_coefficient}, initial_delay={self.initial_delay}, "
            f"max_delay={self.max_delay}, retry_on={self.retry_on!r})"
        )


def retry_policy(retries: int | Retries | None) -> RetryPolicy:
    """The policy for ``@app.function(retries=...)``: an int means that many retries,
    1 s apart (Modal's meaning)."""
    if retries is None:
        return RetryPolicy()
    if isinstance(retries, Retries):
        return retries.policy()
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise InvalidError(f"retries must be an int or rayfn.Retries, got {retries!r}.")
    return Retries(retries, backoff_coefficient=1.0, initial_delay=1.0).policy()


def _check_range(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise InvalidError(f"{name} must be between {low:g} and {high:g} seconds, got {value!r}.")
