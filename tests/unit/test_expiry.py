import pytest

from rayfn.runtime.expiry import ExpiryQueue, Tombstones, expires_at


def test_expires_at() -> None:
    assert expires_at(100.0, 2.0) == 102.0


def test_expiry_queue_pops_only_due_ids_in_deadline_order() -> None:
    queue = ExpiryQueue()
    for call_id, deadline in [("c", 30.0), ("a", 10.0), ("b", 20.0), ("d", 40.0)]:
        queue.push(call_id, deadline)
    assert queue.next_deadline() == 10.0
    assert list(queue.pop_due(now=25.0)) == ["a", "b"]
    assert len(queue) == 2
    assert list(queue.pop_due(now=25.0)) == []
    assert list(queue.pop_due(now=100.0, limit=1)) == ["c"]
    assert list(queue.pop_due(now=100.0)) == ["d"]
    assert queue.next_deadline() is None


def test_tombstones_are_bounded_and_forget_the_oldest() -> None:
    tombstones = Tombstones(capacity=3)
    for call_id in ["a", "b", "c", "d"]:
        tombstones.add(call_id)
    assert len(tombstones) == 3
    assert "a" not in tombstones
    assert all(c in tombstones for c in "bcd")


def test_zero_capacity_keeps_nothing_and_negative_is_refused() -> None:
    tombstones = Tombstones(capacity=0)
    tombstones.add("a")
    assert "a" not in tombstones
    with pytest.raises(ValueError, match="capacity"):
        Tombstones(capacity=-1)
