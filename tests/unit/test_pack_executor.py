"""run_pack, the task body of a pack, in this process: it runs calls in turn and stops
early where the registry must take over. No cluster needed."""

from __future__ import annotations

import pytest
import ray

from rayfn.records import FailureKind
from rayfn.runtime import executor
from rayfn.runtime.constants import INLINE_RESULT_BYTES
from rayfn.runtime.executor import run_pack
from rayfn.runtime.protocol import TaskHeader


def _pack(code_key: str, inputs: list[int]) -> tuple[list[str], list[bytes]]:
    headers = [
        TaskHeader(f"fc-0-1-call{i}", 1, code_key, (), 2**30, "test.f").to_str() for i in inputs
    ]
    blobs = [ray.cloudpickle.dumps(((i,), {})) for i in inputs]
    return headers, blobs


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> str:
    """A function as if loaded from the code store: returns a large result for 3."""

    def f(i: int) -> object:
        if i == 4:
            raise ValueError("four")
        return bytes(INLINE_RESULT_BYTES + 1) if i == 3 else i * 10

    monkeypatch.setitem(executor._loaded, "unit:f", f)
    return "unit:f"


def test_runs_every_call_in_order_with_its_own_outcome(loaded: str) -> None:
    metas, payload = run_pack(*_pack(loaded, [0, 1, 4, 2]))
    assert payload is None
    assert [m.ok for m in metas] == [True, True, False, True]
    assert [ray.cloudpickle.loads(m.inline) for m in metas if m.ok] == [0, 10, 20]
    assert metas[2].failure is not None and metas[2].failure.type_name.endswith("ValueError")


def test_stops_after_a_large_result_which_is_the_second_return(loaded: str) -> None:
    metas, payload = run_pack(*_pack(loaded, [1, 3, 2, 0]))
    assert len(metas) == 2  # 2 and 0 did not start: the registry queues them again
    assert metas[1].ok and metas[1].inline is None
    assert payload == bytes(INLINE_RESULT_BYTES + 1)


def test_stops_taking_calls_once_its_time_budget_is_spent(
    loaded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "PACK_BUDGET_S", 0.0)
    metas, payload = run_pack(*_pack(loaded, [0, 1, 2]))
    assert len(metas) == 1 and payload is None


def test_a_call_past_its_start_by_does_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []
    monkeypatch.setitem(executor._loaded, "unit:g", ran.append)
    headers, blobs = _pack("unit:g", [1, 2, 3])
    late = TaskHeader.parse(headers[1])._replace(start_by=1.0)  # long past
    later = TaskHeader.parse(headers[2])._replace(start_by=4e9)  # far ahead
    metas, _ = run_pack([headers[0], late.to_str(), later.to_str()], blobs)
    assert ran == [1, 3]
    assert metas[1].failure is not None
    assert metas[1].failure.kind is FailureKind.EXPIRED_UNSTARTED
    meta, _ = executor.run_call(late.to_str(), blobs[1])
    assert meta.failure is not None and meta.failure.kind is FailureKind.EXPIRED_UNSTARTED
    assert ran == [1, 3]
