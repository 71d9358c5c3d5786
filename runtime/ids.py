"""Call ids: 128 random bits, readable, checkable without a round trip.

An id names the registry shard that accepted the call and that shard's *epoch* (how
many times it has started), then 26 base32 characters of randomness:
``fc-0-1-mfrggzdfmztwq2lknnwg23tpoa``. The epoch is what lets a restarted registry tell
an id it lost in its restart (an older epoch: ``CallLostError``) from one it never
issued (``NotFoundError``).
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import NamedTuple

from rayfn.runtime.constants import CALL_ID_PREFIX, CALL_ID_RANDOM_BYTES

# 16 random bytes encode to 26 base32 characters (after stripping the padding). Matched
# whole (fullmatch): "$" would also accept an id ending in a newline.
_CALL_ID_RE = re.compile(
    rf"{re.escape(CALL_ID_PREFIX)}(0|[1-9][0-9]{{0,2}})-([1-9][0-9]{{0,17}})-[a-z2-7]{{26}}"
)
CALL_ID_EXAMPLE = "fc-0-1-mfrggzdfmztwq2lknnwg23tpoa"


class CallIdOrigin(NamedTuple):
    """Which registry shard issued an id, in which of its epochs."""

    shard: int
    epoch: int


def new_call_id(shard: int = 0, epoch: int = 1) -> str:
    """Return a fresh, unguessable call id issued by ``shard`` in ``epoch``."""
    raw = base64.b32encode(secrets.token_bytes(CALL_ID_RANDOM_BYTES)).decode("ascii")
    return f"{CALL_ID_PREFIX}{shard}-{epoch}-{raw.rstrip('=').lower()}"


def parse_call_id(value: object) -> CallIdOrigin | None:
    """The shard and epoch an id names, or None if ``value`` is not shaped like one."""
    if not isinstance(value, str):
        return None
    found = _CALL_ID_RE.fullmatch(value)
    if found is None:
        return None
    return CallIdOrigin(int(found.group(1)), int(found.group(2)))


def is_call_id(value: object) -> bool:
    """Whether ``value`` has the shape of a call id (it may still be unknown)."""
    return parse_call_id(value) is not None
