"""The registry's packing policy: when queued calls share a task, and how many."""

from __future__ import annotations

from rayfn.runtime.constants import PACK_MAX_CALLS, PACK_MAX_RUN_S, PACK_SPREAD
from rayfn.runtime.packing import PackPolicy

V1 = ("app", "f", 1)
V2 = ("app", "f", 2)


def _short(policy: PackPolicy, version: tuple[str, str, int] = V1) -> PackPolicy:
    policy.observe(version, PACK_MAX_RUN_S / 10)
    return policy


def test_unmeasured_or_unpackable_versions_go_one_per_task() -> None:
    policy = PackPolicy()
    assert policy.size(V1, True, 1000) == 1  # never seen run
    _short(policy)
    assert policy.size(V1, False, 1000) == 1  # e.g. a class method, a startup timeout


def test_short_calls_pack_up_to_the_cap_and_leave_a_spread_queue() -> None:
    policy = _short(PackPolicy())
    assert policy.size(V1, True, 10_000) == PACK_MAX_CALLS
    assert policy.size(V1, True, 10 * PACK_SPREAD) == 10
    assert policy.size(V1, True, PACK_SPREAD - 1) == 1


def test_a_few_slow_runs_stop_packing_and_a_few_short_ones_resume_it() -> None:
    policy = _short(PackPolicy())
    for _ in range(3):
        policy.observe(V1, 1.0)
    assert policy.size(V1, True, 1000) == 1
    for _ in range(40):
        policy.observe(V1, 0.0)
    assert policy.size(V1, True, 1000) > 1


def test_each_version_is_measured_afresh_and_forgotten_with_its_app() -> None:
    policy = _short(PackPolicy())
    assert policy.size(V2, True, 1000) == 1  # a redeploy starts unmeasured
    policy.forget("app")
    assert policy.size(V1, True, 1000) == 1


def test_a_crashed_pack_turns_packing_off_for_that_version_only() -> None:
    policy = _short(_short(PackPolicy()), V2)
    policy.crashed(V1)
    assert policy.size(V1, True, 1000) == 1
    assert policy.size(V2, True, 1000) > 1
