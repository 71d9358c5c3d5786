"""Validation of ``@app.function(...)`` options, at decoration time, with the fix in
the message. Pure: no Ray."""

from __future__ import annotations

import math

from rayfn.exception import InvalidError
from rayfn.runtime.constants import MAX_RESULT_TTL_S
from rayfn.runtime.records import FunctionOptions


def function_options(
    *,
    cpu: float | None = None,
    memory: int | None = None,
    result_ttl: float | None = None,
    default_result_ttl: float,
) -> FunctionOptions:
    """Check the options a user gave and return them as a record.

    Raises:
        InvalidError: an option is out of range; the message says the allowed range.
    """
    if cpu is not None and (not _is_number(cpu) or not 0 <= cpu <= 1024):
        raise InvalidError(f"cpu must be a number of cores between 0 and 1024, got {cpu!r}.")
    if memory is not None and (
        isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0
    ):
        raise InvalidError(f"memory must be a positive whole number of MiB, got {memory!r}.")
    if result_ttl is None:
        result_ttl = default_result_ttl
    if not _is_number(result_ttl) or not 0 < result_ttl <= MAX_RESULT_TTL_S:
        raise InvalidError(
            f"result_ttl must be a number of seconds above 0 and at most "
            f"{MAX_RESULT_TTL_S:.0f} (one week), got {result_ttl!r}."
        )
    return FunctionOptions(
        cpu=None if cpu is None else float(cpu), memory_mib=memory, result_ttl=float(result_ttl)
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
