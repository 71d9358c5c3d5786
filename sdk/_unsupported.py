"""Modal names rayfn does not have yet: each raises ``NotSupportedError`` where a
program uses it, naming it and what to use instead, never an ``AttributeError`` or a
``TypeError`` from deep inside."""

from __future__ import annotations

from typing import NoReturn

from rayfn.exception import NotSupportedError


def refuse(what: str, instead: str) -> NoReturn:
    raise NotSupportedError(f"{what} is not supported by rayfn yet: {instead}.")
