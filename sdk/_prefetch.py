"""Results fetched ahead: when ``get`` asks the registry about one call, it also asks
about other calls this process spawned and has not fetched yet, and keeps the answers
for those that had finished, briefly. A loop of ``get``s over many spawned calls then
costs a round trip per batch, not per call."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from rayfn.runtime.records import CallOutcome

# How many other calls one get asks about, and how many spawned ids are remembered.
BATCH = 255
_REMEMBERED = 10_000
# An answer fetched ahead is served for this long at most (and never past expiry).
_FRESH_S = 5.0

_lock = threading.Lock()
_unfetched: OrderedDict[str, None] = OrderedDict()  # spawned here, result not seen
_answers: dict[str, tuple[CallOutcome, float]] = {}  # fetched ahead, with when


def spawned(call_ids: list[str]) -> None:
    with _lock:
        for call_id in call_ids:
            _unfetched[call_id] = None
        while len(_unfetched) > _REMEMBERED:
            _unfetched.popitem(last=False)


def take(call_id: str) -> CallOutcome | None:
    """An answer fetched ahead for ``call_id``, if one is still fresh."""
    with _lock:
        found = _answers.pop(call_id, None)
    if found is None:
        return None
    outcome, fetched_at = found
    now = time.time()
    if now - fetched_at > _FRESH_S or (
        outcome.expires_at is not None and now >= outcome.expires_at
    ):
        return None
    return outcome


def others(call_id: str) -> list[str]:
    """Spawned calls to ask about along with ``call_id``. Nothing changes until
    ``keep``: a get that never comes back (cancelled, or its round trip failed)
    leaves ``call_id`` to be asked about by the next one."""
    with _lock:
        picked: list[str] = []
        for other in _unfetched:
            if len(picked) == BATCH:
                break
            if other != call_id:
                picked.append(other)
        return picked


def keep(call_id: str, outcome: CallOutcome, finished: dict[str, CallOutcome]) -> None:
    """Remember what a get brought back; ``call_id`` itself stays unfetched while pending."""
    now = time.time()
    with _lock:
        _unfetched.pop(call_id, None)
        if outcome.status is not None and not outcome.status.is_terminal:
            _unfetched[call_id] = None  # asked about again, after the others
        for other, answer in finished.items():
            _unfetched.pop(other, None)
            _answers[other] = (answer, now)
        if len(_answers) > _REMEMBERED:  # answers nobody asked for: drop the oldest
            for stale in list(_answers)[: len(_answers) - _REMEMBERED]:
                del _answers[stale]
