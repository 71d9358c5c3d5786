"""The registry's own figures for the console (``GET /v1/stats``): per function, its
calls by status, queue depth, calls running, and percentiles of run time and queue
wait over the last hour; calls ended per minute; a run-time histogram per function.
Pure: computed from the book's calls, no Ray, no clock (``now`` is given)."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from rayfn.records import CallStatus
from rayfn.runtime.calls import Call
from rayfn.runtime.identity import FunctionKey, app_of

WINDOW_S = 3600.0
FIGURES_FRESH_S = 5.0  # how long the registry reuses what it worked out (a walk of every call)
BUCKET_S = 60.0
# Upper edges of the run-time histogram's buckets, in seconds (the last is open).
EDGES = (0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, math.inf)
EDGE_LABELS = ("10ms", "100ms", "500ms", "1s", "5s", "30s", "2m", "10m", "more")
FAILED = frozenset({CallStatus.FAILED, CallStatus.TIMED_OUT})


def percentile(values: list[float], share: float) -> float | None:
    """The value ``share`` (0..1) of the way up ``values`` (sorted), nearest rank."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(share * len(values)) - 1))]


class _Function:
    __slots__ = ("by_status", "histogram", "runs", "waits")

    def __init__(self) -> None:
        self.by_status: defaultdict[str, int] = defaultdict(int)
        self.runs: list[float] = []
        self.waits: list[float] = []
        self.histogram = [0] * len(EDGES)


def figures(
    calls: Iterable[Call],
    queued: Mapping[FunctionKey, int],
    running: Mapping[FunctionKey, int],
    now: float,
    window: float = WINDOW_S,
) -> dict[str, Any]:
    """The figures of the calls created or ended within ``window`` seconds of ``now``
    (and of every call not ended), as JSON-able data."""
    since = now - window
    per: defaultdict[tuple[str, str], _Function] = defaultdict(_Function)
    minutes = int(window // BUCKET_S)
    first = math.floor(now / BUCKET_S) - minutes + 1  # the oldest minute shown
    ended_ok = [0] * minutes
    ended_bad = [0] * minutes
    tracked = 0
    for call in calls:
        tracked += 1
        finished = call.finished_at
        if finished is not None and finished < since and call.created_at < since:
            continue
        name = (app_of(call.app), call.function)
        mine = per[name]
        mine.by_status[call.status.value] += 1
        if call.attempts:
            first_start = next((a.started_at for a in call.attempts if a.started_at), None)
            if first_start is not None:
                mine.waits.append(first_start - call.created_at)
            last = call.attempts[-1]
            if last.started_at is not None and last.finished_at is not None:
                took = last.finished_at - last.started_at
                mine.runs.append(took)
                mine.histogram[bisect.bisect_left(EDGES, took)] += 1
        if finished is not None and finished >= since:
            slot = math.floor(finished / BUCKET_S) - first
            if 0 <= slot < minutes:
                if call.status is CallStatus.SUCCEEDED:
                    ended_ok[slot] += 1
                elif call.status in FAILED:
                    ended_bad[slot] += 1
    for key in (*queued, *running):  # functions with work but no call in the window
        per[(app_of(key[0]), key[1])]
    rows = []
    for (app, function), mine in sorted(per.items()):
        mine.runs.sort()
        mine.waits.sort()
        depth = sum(n for k, n in queued.items() if (app_of(k[0]), k[1]) == (app, function))
        on = sum(n for k, n in running.items() if (app_of(k[0]), k[1]) == (app, function))
        rows.append(
            {
                "app": app,
                "function": function,
                "by_status": dict(mine.by_status),
                "queued": depth,
                "running": on,
                "run_p50": percentile(mine.runs, 0.5),
                "run_p95": percentile(mine.runs, 0.95),
                "wait_p50": percentile(mine.waits, 0.5),
                "wait_p95": percentile(mine.waits, 0.95),
                "histogram": mine.histogram,
            }
        )
    timeline = [
        {"at": (first + i) * BUCKET_S, "succeeded": ended_ok[i], "failed": ended_bad[i]}
        for i in range(minutes)
    ]
    return {
        "tracked": tracked,
        "window": window,
        "functions": rows,
        "timeline": timeline,
        "histogram_edges": list(EDGE_LABELS),
    }
