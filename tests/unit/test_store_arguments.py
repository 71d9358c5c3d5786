"""Dict and Queue arguments are checked on the client, before anything is sent:
InvalidError, the TypeError Python itself would raise, or SerializationError."""

from __future__ import annotations

import math
import threading

import pytest

import rayfn
from rayfn.exception import InvalidError, SerializationError


@pytest.mark.parametrize("seconds", [10**20, -1, math.nan, math.inf, True, "5"])
def test_queue_waits_outside_zero_to_a_year_are_refused(seconds: object) -> None:
    queue = rayfn.Queue.from_name("q")
    with pytest.raises(InvalidError, match=r"from 0 to 31536000 \(one year\)"):
        queue.get(timeout=seconds)  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match=r"from 0 to 31536000 \(one year\)"):
        queue.get_many(3, timeout=seconds)  # type: ignore[arg-type]


def test_queue_arguments_are_checked_before_anything_is_sent() -> None:
    queue = rayfn.Queue.from_name("q")
    for n in (0, -1, 1.5, True, "2"):
        with pytest.raises(InvalidError, match="n_values must be a whole number"):
            queue.get_many(n)  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="timeout="):
        queue.get(5)  # type: ignore[arg-type]  # the wait passed as block
    with pytest.raises(TypeError, match="iterable of values, got int"):
        queue.put_many(5)  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="cannot pickle"):
        queue.put(threading.Lock())


def test_dict_arguments_are_checked_before_anything_is_sent() -> None:
    store = rayfn.Dict.from_name("d")
    with pytest.raises(InvalidError, match="skip_if_exists must be True or False"):
        store.put("k", "v", skip_if_exists="yes")  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="picklable"):
        store["k"] = threading.Lock()
    with pytest.raises(SerializationError):
        store.get(threading.Lock())
