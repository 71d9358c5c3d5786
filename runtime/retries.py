"""The retry policy: how many attempts a call gets and how long to wait between them.
Pure; the registry applies it, and waits out the delay itself (no worker is held)."""

from __future__ import annotations

from dataclasses import dataclass

# Bounds checked at decoration time (rayfn.Retries); Modal caps max_delay at 60 s,
# rayfn allows up to an hour for jobs that wait on slow external systems.
MAX_RETRIES = 100
MAX_DELAY_S = 3600.0
MAX_INITIAL_DELAY_S = 3600.0
MAX_BACKOFF_COEFFICIENT = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """Validated retry settings of a function. ``retry_on`` holds the qualified names
    of the exception types worth retrying (empty: any exception)."""

    max_retries: int = 0
    backoff_coefficient: float = 2.0
    initial_delay: float = 1.0
    max_delay: float = 60.0
    retry_on: tuple[str, ...] = ()

    def next_delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry):
        ``initial_delay * backoff_coefficient ** (retry - 1)``, capped at ``max_delay``.

        >>> RetryPolicy(3, backoff_coefficient=2, initial_delay=0.2).next_delay(2)
        0.4
        """
        if retry < 1:
            raise ValueError(f"retry numbers start at 1, got {retry}")
        # Cap the exponent first: 2.0 ** 10_000 overflows a float.
        exponent = min(retry - 1, 1024)
        try:
            delay = self.initial_delay * self.backoff_coefficient**exponent
        except OverflowError:
            delay = self.max_delay
        return min(delay, self.max_delay)

    def should_retry(self, attempts_made: int, failure_type: str | tuple[str, ...] | None) -> bool:
        """Whether a call whose attempt ``attempts_made`` just failed gets another.

        ``retry_on`` matches as ``except`` does: a listed class matches its subclasses
        too, when ``failure_type`` names the exception's classes (``RemoteFailure.
        type_names``): ``retry_on=(OSError,)`` retries a ``ConnectionError``.

        >>> RetryPolicy(1, retry_on=("builtins.OSError",)).should_retry(
        ...     1, ("builtins.ConnectionError", "builtins.OSError", "builtins.Exception"))
        True

        Args:
            attempts_made: attempts so far, the failed one included (1 after the first).
            failure_type: the qualified names of the classes of the exception the
                function raised, its own first (one name alone matches only that
                class), or None when the attempt failed without one (worker crash,
                timeout): those are always retried while retries remain.
        """
        if attempts_made > self.max_retries:
            return False
        if failure_type is None or not self.retry_on:
            return True
        names = (failure_type,) if isinstance(failure_type, str) else failure_type
        return any(name in self.retry_on for name in names)
