"""How a call's result becomes the job API's JSON answer; pure, tested without Ray.

The rules (README "On the web"):

- ``bytes`` (and ``bytearray``, ``memoryview``) become base64 text (RFC 4648, padded);
  a result that *is* bytes is answered with ``"encoding": "base64"`` beside it.
- ``NaN``, ``Infinity`` and ``-Infinity``, which JSON lacks, become the strings
  ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (the protobuf JSON mapping's rule), never
  ``null``, which would pass for a missing value.
- Tuples and sets become lists; dict keys must be strings, numbers, booleans or None
  (which become strings, as ``json`` does); other values go through FastAPI's
  ``jsonable_encoder`` (pydantic models, dataclasses, dates, enums...).
- No JSON form (a lone surrogate in a string, an object FastAPI cannot encode, a key
  that is not a scalar, nesting deeper than ``MAX_DEPTH``): ``NoJsonForm``, a 406.
- An answer over the size limit: ``TooLarge``, a 413, found before the large part is
  encoded where it can be (a big ``bytes`` or ``str`` is measured, not copied).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from fastapi.encoders import jsonable_encoder

# Deeper results have no JSON answer here (json and FastAPI recurse per level).
MAX_DEPTH = 256

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


class NoJsonForm(Exception):
    """The result cannot be written as JSON; the message says why."""


class TooLarge(Exception):
    """The JSON answer would be over the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"over the limit of {limit} bytes")
        self.limit = limit


def result_body(call_id: str, value: Any, max_bytes: int) -> bytes:
    """The 200 answer for a call that returned ``value``, as UTF-8 JSON bytes.

    Raises:
        NoJsonForm: ``value`` has no JSON form.
        TooLarge: the answer would be over ``max_bytes``.
    """
    budget = _Budget(max_bytes)
    answer: dict[str, Any] = {"call_id": call_id, "status": "SUCCEEDED"}
    answer["result"] = _jsonable(value, budget, 0)
    if isinstance(value, bytes | bytearray | memoryview):
        answer["encoding"] = "base64"
    try:
        text = json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        body = text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoJsonForm("it holds a string that is not valid Unicode (a lone surrogate)") from None
    except (ValueError, RecursionError) as exc:
        raise NoJsonForm(str(exc)) from None
    if len(body) > max_bytes:
        raise TooLarge(max_bytes)
    return body


class _Budget:
    """Counts the bytes the answer will have at least, to stop before encoding a part
    that cannot fit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise TooLarge(self.limit)


def _jsonable(value: Any, budget: _Budget, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise NoJsonForm(f"it is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        budget.spend(8)
        return value
    if isinstance(value, float):
        budget.spend(8)
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    if isinstance(value, str):
        budget.spend(len(value) + 2)
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        budget.spend(4 * math.ceil(len(raw) / 3) + 2)
        return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dict):
        budget.spend(2)
        return {_key(k): _jsonable(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        budget.spend(2)
        return [_jsonable(item, budget, depth + 1) for item in value]
    try:
        encoded = jsonable_encoder(value)
    except RecursionError:
        raise NoJsonForm(f"it is nested deeper than {MAX_DEPTH} levels") from None
    except Exception:
        raise NoJsonForm(f"a {type(value).__name__} has no JSON form") from None
    if isinstance(encoded, dict | list):  # a model or dataclass: its fields follow the rules
        return _jsonable(encoded, budget, depth)
    if isinstance(encoded, str | int | float | bool) or encoded is None:
        return _jsonable(encoded, budget, depth)
    raise NoJsonForm(f"a {type(value).__name__} has no JSON form")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key) if not isinstance(key, float) or math.isfinite(key) else str(key)
    raise NoJsonForm(f"a dict key of type {type(key).__name__} has no JSON form")
