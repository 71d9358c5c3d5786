import base64
import collections

from rayfn.runtime.ids import CALL_ID_EXAMPLE, CallIdOrigin, is_call_id, new_call_id, parse_call_id


def _random_part(call_id: str) -> bytes:
    return base64.b32decode(call_id.rsplit("-", 1)[1].upper() + "======")


def test_call_id_names_its_shard_and_epoch() -> None:
    call_id = new_call_id(shard=3, epoch=12)
    assert call_id.startswith("fc-3-12-")
    assert parse_call_id(call_id) == CallIdOrigin(shard=3, epoch=12)
    assert is_call_id(call_id)
    assert is_call_id(CALL_ID_EXAMPLE)


def test_call_id_carries_128_random_bits() -> None:
    ids = [new_call_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert len(_random_part(ids[0])) == 16
    # Every bit position is set about half of the time: the bits are random, not a
    # counter or a clock.
    ones = collections.Counter()
    for call_id in ids[:4000]:
        value = int.from_bytes(_random_part(call_id), "big")
        for bit in range(128):
            ones[bit] += (value >> bit) & 1
    assert all(1600 < ones[bit] < 2400 for bit in range(128))


def test_is_call_id_rejects_other_shapes() -> None:
    good = new_call_id()
    random_part = good.rsplit("-", 1)[1]
    for bad in [
        "",
        "fc-",
        good[:-1],
        good + "a",
        good.upper(),
        "fc_" + good[3:],
        "fc-" + random_part,  # no shard and epoch
        "fc-0-0-" + random_part,  # epochs start at 1
        "fc-01-1-" + random_part,  # no leading zeros: one spelling per id
        "fc-0-1-" + random_part.replace(random_part[0], "1"),  # 1 is not base32
        None,
        7,
    ]:
        assert not is_call_id(bad), bad
        assert parse_call_id(bad) is None
