"""Checks of user input that several entry points share: names (apps, functions,
classes, Dicts, Queues, secrets) and how long a caller may wait. Each raises
``InvalidError`` with the allowed range in its message, before anything is sent."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from rayfn.exception import InvalidError
from rayfn.runtime.constants import MAX_WAIT_S

F = TypeVar("F", bound=Callable[..., Any])

# Matched whole (fullmatch): "$" would also accept a name ending in a newline.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_name(kind: str, name: object) -> str:
    """Check the name of an app, function, Dict, Queue or secret (``kind`` says which).

    Raises:
        InvalidError: the name is empty, too long, or has characters other than
            letters, digits, ``_``, ``.`` and ``-``.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidError(
            f"Invalid {kind} name {name!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )
    return name


def check_wait(name: str, seconds: object) -> float | None:
    """Check how long a caller asked to wait: None (no limit) or a number of seconds
    from 0 to ``MAX_WAIT_S``. ``name`` is the parameter's, for the message.

    Raises:
        InvalidError: anything else (a bool, NaN, infinity, a negative or huge number).
    """
    if seconds is None:
        return None
    # NaN and infinity fail the range check; so does a huge int, with no OverflowError.
    if (
        isinstance(seconds, int | float)
        and not isinstance(seconds, bool)
        and 0 <= seconds <= MAX_WAIT_S
    ):
        return float(seconds)
    raise InvalidError(
        f"{name} must be None (no limit) or a number of seconds from 0 to {MAX_WAIT_S:.0f} "
        f"(one year), got {seconds!r}."
    )


def marker(attribute: str, value: object, refusal: str) -> Callable[[F], F]:
    """A decorator that marks a function by setting ``attribute`` to ``value`` on it
    (``@rayfn.enter()``, ``@asgi_app()``...), refusing what cannot be called.

    Raises:
        InvalidError: ``refusal``, followed by what was decorated.
    """

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise InvalidError(f"{refusal}, not {fn!r}.")
        setattr(fn, attribute, value)
        return fn

    return decorate
