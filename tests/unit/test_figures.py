"""The console's figures from the book's calls (runtime/figures.py)."""

from __future__ import annotations

from rayfn.records import CallStatus
from rayfn.runtime.calls import Attempt, Call
from rayfn.runtime.figures import figures, percentile
from rayfn.runtime.identity import FunctionKey

NOW = 1_000_000.0


def _call(index: int, status: CallStatus, created: float, waited: float, ran: float) -> Call:
    call = Call(f"fc-{index}", "jobs", "work", None, 3600.0, created)
    attempt = Attempt(1, created)
    attempt.started_at = created + waited
    attempt.finished_at = created + waited + ran
    call.attempts.append(attempt)
    call.status = status
    call.finished_at = attempt.finished_at
    return call


def test_percentiles_by_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0


def test_figures_per_function_and_per_minute() -> None:
    calls = [
        _call(0, CallStatus.SUCCEEDED, NOW - 120, 0.5, 0.05),
        _call(1, CallStatus.SUCCEEDED, NOW - 60, 1.5, 2.0),
        _call(2, CallStatus.FAILED, NOW - 30, 0.5, 40.0),
        _call(3, CallStatus.SUCCEEDED, NOW - 7200, 0.1, 0.1),  # older than the hour
    ]
    queued = {FunctionKey("jobs", "work"): 3}
    running = {FunctionKey("jobs@ep-1", "other"): 1}  # an ephemeral run's: under its app
    found = figures(calls, queued, running, NOW)
    assert found["tracked"] == 4
    other, work = found["functions"]  # sorted by (app, function)
    assert (other["app"], other["function"], other["running"]) == ("jobs", "other", 1)
    assert work["by_status"] == {"SUCCEEDED": 2, "FAILED": 1}
    assert (work["queued"], work["run_p50"], work["wait_p95"]) == (3, 2.0, 1.5)
    assert sum(work["histogram"]) == 3 and work["histogram"][1] == 1  # 50 ms: under 100 ms
    assert len(found["timeline"]) == 60
    assert sum(b["succeeded"] for b in found["timeline"]) == 2
    assert sum(b["failed"] for b in found["timeline"]) == 1
    assert found["timeline"][-1]["at"] <= NOW < found["timeline"][-1]["at"] + 60
