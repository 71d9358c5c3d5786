import base64
import collections

from rayfn.runtime.ids import CALL_ID_LENGTH, is_call_id, new_call_id


def test_call_id_format() -> None:
    call_id = new_call_id()
    assert call_id.startswith("fc-")
    assert len(call_id) == CALL_ID_LENGTH == 29
    assert is_call_id(call_id)


def test_call_id_carries_128_random_bits() -> None:
    ids = [new_call_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    raw = base64.b32decode(ids[0][3:].upper() + "======")
    assert len(raw) == 16
    # Every bit position is set about half of the time: the bits are random, not a
    # counter or a clock.
    ones = collections.Counter()
    for call_id in ids[:4000]:
        value = int.from_bytes(base64.b32decode(call_id[3:].upper() + "======"), "big")
        for bit in range(128):
            ones[bit] += (value >> bit) & 1
    assert all(1600 < ones[bit] < 2400 for bit in range(128))


def test_is_call_id_rejects_other_shapes() -> None:
    good = new_call_id()
    for bad in ["", "fc-", good[:-1], good + "a", good.upper(), "fc_" + good[3:], None, 7]:
        assert not is_call_id(bad)
