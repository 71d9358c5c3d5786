"""Call ids: 128 random bits, readable, checkable without a round trip."""

from __future__ import annotations

import base64
import re
import secrets

from rayfn.runtime.constants import CALL_ID_PREFIX, CALL_ID_RANDOM_BYTES

# 16 random bytes encode to 26 base32 characters (after stripping the padding).
CALL_ID_LENGTH = len(CALL_ID_PREFIX) + 26
_CALL_ID_RE = re.compile(rf"^{re.escape(CALL_ID_PREFIX)}[a-z2-7]{{26}}$")


def new_call_id() -> str:
    """Return a fresh, unguessable call id such as ``fc-mfrggzdfmztwq2lknnwg23tpoa``."""
    raw = base64.b32encode(secrets.token_bytes(CALL_ID_RANDOM_BYTES)).decode("ascii")
    return CALL_ID_PREFIX + raw.rstrip("=").lower()


def is_call_id(value: object) -> bool:
    """Whether ``value`` has the shape of a call id (it may still be unknown)."""
    return isinstance(value, str) and _CALL_ID_RE.match(value) is not None
