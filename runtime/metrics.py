"""The registry's metrics, exported through Ray (``ray.util.metrics``) to each node's
Prometheus endpoint, tagged with ``app`` and ``function``.

The hot path only bumps plain dicts; ``flush`` (once a second) hands the totals to
Ray, so a call costs no metrics call of its own.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rayfn.runtime.identity import FunctionKey, app_of

# Events counted per call: rayfn_calls_<event> counters.
EVENTS = (
    "spawned",
    "succeeded",
    "failed",
    "retried",
    "timed_out",
    "cancelled",
    "expired_unstarted",
    "expired",
)
TAG_KEYS = ("app", "function")
# Seconds; queue waits and run times of job-queue calls span ms to hours.
BOUNDARIES = [0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0]
FLUSH_EVERY_S = 1.0


def _tags(app: str, function: str) -> dict[str, str]:
    # An ephemeral run is reported under its app's name.
    return {"app": app_of(app), "function": function}


class CallMetrics:
    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()  # (event, app, fn)
        self._waits: list[tuple[str, str, float]] = []
        self._runs: list[tuple[str, str, float]] = []
        self._gauged: set[FunctionKey] = set()  # functions whose gauges are set
        self._ray: dict[str, Any] | None = None

    def count(self, event: str, app: str, function: str, n: int = 1) -> None:
        self._counts[(event, app, function)] += n

    def queue_wait(self, app: str, function: str, seconds: float) -> None:
        self._waits.append((app, function, seconds))

    def run_time(self, app: str, function: str, seconds: float) -> None:
        self._runs.append((app, function, seconds))

    def flush(self, queued: dict[FunctionKey, int], running: dict[FunctionKey, int]) -> None:
        """Hand what was counted since the last flush to Ray, and set the gauges."""
        ray_metrics = self._metrics()
        counts, self._counts = self._counts, Counter()
        for (event, app, function), n in counts.items():
            ray_metrics[event].inc(n, tags=_tags(app, function))
        waits, self._waits = self._waits, []
        for app, function, seconds in waits:
            ray_metrics["queue_wait"].observe(seconds, tags=_tags(app, function))
        runs, self._runs = self._runs, []
        for app, function, seconds in runs:
            ray_metrics["run_time"].observe(seconds, tags=_tags(app, function))
        # Functions that went idle are set to 0 once, then left alone.
        keys = set(queued) | set(running)
        for key in keys | self._gauged:
            tags = _tags(*key)
            ray_metrics["queue_depth"].set(queued.get(key, 0), tags=tags)
            ray_metrics["running"].set(running.get(key, 0), tags=tags)
        self._gauged = keys

    def _metrics(self) -> dict[str, Any]:
        if self._ray is None:
            from ray.util import metrics

            made: dict[str, Any] = {
                event: metrics.Counter(
                    f"rayfn_calls_{event}",
                    description=f"rayfn calls {event.replace('_', ' ')}",
                    tag_keys=TAG_KEYS,
                )
                for event in EVENTS
            }
            made["queue_depth"] = metrics.Gauge(
                "rayfn_queue_depth", "Calls waiting in rayfn's queue", tag_keys=TAG_KEYS
            )
            made["running"] = metrics.Gauge(
                "rayfn_running", "Calls handed to Ray and not yet finished", tag_keys=TAG_KEYS
            )
            made["queue_wait"] = metrics.Histogram(
                "rayfn_queue_wait_seconds",
                "From spawn to the start of the first attempt",
                boundaries=BOUNDARIES,
                tag_keys=TAG_KEYS,
            )
            made["run_time"] = metrics.Histogram(
                "rayfn_run_seconds",
                "Run time of the attempt that ended the call",
                boundaries=BOUNDARIES,
                tag_keys=TAG_KEYS,
            )
            self._ray = made
        return self._ray
