"""What lets a submission sent again get the call made the first time, instead of a
second one: spawn tokens (a client resends a round trip whose answer it lost with a
registry that restarted) and idempotency keys (the user's, per function). Both are
bounded, oldest forgotten first, and rebuilt from the calls' records on restore
(runtime/book.py). Pure: no Ray, no clock."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from rayfn.runtime.identity import FunctionKey as Key
from rayfn.runtime.protocol import Conflict

# Spawn round trips remembered by their token: a resend comes within seconds.
MAX_SPAWN_TOKENS = 100_000
# Idempotency keys remembered (past their calls' expiry), as many as tombstones by default.
MAX_IDEMPOTENCY_KEYS = 100_000


def digest(args: bytes) -> str:
    """What an idempotency key remembers of a call's arguments."""
    return hashlib.sha256(args).hexdigest()


class Resubmits:
    def __init__(self) -> None:
        self.tokens: OrderedDict[str, list[str]] = OrderedDict()  # spawn token -> ids
        # (function, idempotency key) -> (call id, digest of its args)
        self.keys: OrderedDict[tuple[Key, str], tuple[str, str]] = OrderedDict()

    def sent(self, token: str, call_id: str) -> None:
        """``call_id`` was accepted in the round trip ``token`` names."""
        ids = self.tokens.get(token)
        if ids is None:
            ids = self.tokens[token] = []
            if len(self.tokens) > MAX_SPAWN_TOKENS:
                self.tokens.popitem(last=False)
        ids.append(call_id)

    def keyed(self, key: Key, idempotency_key: str, args: bytes) -> str | Conflict | None:
        """The call an idempotency key already names for this function: its id;
        ``Conflict`` if it was made with other arguments; None if the key is new."""
        known = self.keys.get((key, idempotency_key))
        if known is None:
            return None
        call_id, args_digest = known
        if args_digest != digest(args):
            return Conflict(idempotency_key, call_id)
        return call_id

    def name(self, key: Key, idempotency: tuple[str, str], call_id: str) -> None:
        """Remember that ``idempotency`` (key, args digest) names ``call_id``."""
        idempotency_key, args_digest = idempotency
        self.keys[(key, idempotency_key)] = (call_id, args_digest)
        if len(self.keys) > MAX_IDEMPOTENCY_KEYS:
            self.keys.popitem(last=False)
