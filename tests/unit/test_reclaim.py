"""Idle containers stopped early when other work waits for what they hold
(runtime/containers.py: ``Pool.reclaimable``, ``to_reclaim``), without Ray."""

from __future__ import annotations

import time

from rayfn.runtime.constants import RECLAIM_IDLE_S
from rayfn.runtime.containers import Pool, Slot, to_reclaim
from rayfn.runtime.records import ContainerOptions, FunctionOptions
from rayfn.runtime.resources import held_resources, parse_gpu

ONE_CPU = {"CPU": 1.0}
NODE = {"CPU": 2.0, "memory": 8e9}


def pool_of(idle_since: list[float], min_containers: int = 0) -> Pool:
    pool = Pool(ContainerOptions("Model", "predict", min_containers=min_containers), ONE_CPU)
    pool.slots = [Slot(handle=n, idle_since=t) for n, t in enumerate(idle_since)]
    return pool


def test_only_containers_idle_long_enough_and_above_the_minimum_may_go() -> None:
    now = 100.0
    pool = pool_of([now - 5, now - RECLAIM_IDLE_S / 2, now - 3], min_containers=1)
    assert [s.handle for s in pool.reclaimable(now)] == [0, 2]  # longest idle first
    pool.slots[0].in_flight = 1  # busy: not idle at all
    assert [s.handle for s in pool.reclaimable(now)] == [2]
    pool.slots[0].in_flight = 0
    pool.container = ContainerOptions("Model", "predict", min_containers=2)
    assert [s.handle for s in pool.reclaimable(now)] == [0]  # one spare above the two kept
    pool.retired = True  # its app was redeployed: nothing to keep
    assert len(pool.reclaimable(now)) == 2


def test_a_stopped_apps_idle_containers_go_at_once_its_busy_ones_once_done() -> None:
    now = 100.0
    pool = pool_of([now - 1, now - 2, now - 3], min_containers=1)  # scaledown_window 60 s
    assert pool.idle_to_stop(now) == []
    pool.slots[0].in_flight = 1
    pool.retired = True  # its app was stopped: no call will come
    assert [s.handle for s in pool.idle_to_stop(now)] == [1, 2]
    pool.release(pool.slots[0])  # idle from now (Ray's monotonic clock)
    assert [s.handle for s in pool.idle_to_stop(time.monotonic())] == [0]


def test_as_many_stop_as_the_waiting_work_needs() -> None:
    idle = [(Slot(handle=n), ONE_CPU) for n in range(3)]
    assert to_reclaim(idle, [], [], [NODE]) == []  # nothing waits: all stay
    one = to_reclaim(idle, [({"CPU": 1.0}, 1)], [], [NODE])
    assert [s.handle for s in one] == [0]
    assert len(to_reclaim(idle, [({"CPU": 1.0}, 2)], [], [NODE])) == 2
    assert len(to_reclaim(idle, [({"CPU": 0.5}, 3)], [], [NODE])) == 2  # 1.5 CPUs short
    # A container already being stopped gives its CPU back: one fewer goes.
    assert len(to_reclaim(idle, [({"CPU": 1.0}, 2)], [ONE_CPU], [NODE])) == 1


def test_work_our_containers_cannot_help_keeps_them() -> None:
    idle = [(Slot(handle=0), ONE_CPU)]
    assert to_reclaim(idle, [({"GPU": 1.0}, 4)], [], [NODE]) == []  # no CPU wanted
    # Wants a CPU too, but no node has a GPU: it waits for a new node, not for ours.
    assert to_reclaim(idle, [({"CPU": 1.0, "GPU": 1.0}, 1)], [], [NODE]) == []
    gpu_node = {**NODE, "GPU": 1.0}
    assert len(to_reclaim(idle, [({"CPU": 1.0, "GPU": 1.0}, 1)], [], [NODE, gpu_node])) == 1


def test_held_resources_follow_the_function_options() -> None:
    assert held_resources(FunctionOptions().ray_task_options()) == {"CPU": 1.0}
    options = FunctionOptions(cpu=0.25, memory_mib=512, gpu=parse_gpu("A100:2"))
    assert held_resources(options.ray_task_options()) == {
        "CPU": 0.25,
        "GPU": 2.0,
        "memory": 512 * 1024 * 1024,
        "accelerator_type:A100": 0.001,
    }
    assert held_resources({"num_cpus": 0}) == {}
