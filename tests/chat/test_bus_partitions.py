"""chat/bus_partitions.py: partitions evenly spaced over the slot space, a stable channel →
partition map, and the logical channel carried in front of each ring."""

from __future__ import annotations

from collections import Counter

import pytest
from redis.crc import key_slot

from chat.bus_partitions import partition_names, partition_of, slot_of, unwrap, wrap


@pytest.mark.parametrize("count", [1, 3, 16, 32, 100, 1024])
def test_partition_i_sits_in_the_ith_equal_run_of_slots(count: int) -> None:
    names = partition_names(count)
    assert len(names) == count == len(set(names))
    for i, name in enumerate(names):
        assert i * 16384 // count <= slot_of(name) < (i + 1) * 16384 // count
        assert slot_of(name) == key_slot(name.encode())
    assert partition_names(count) == names  # every process computes the same


@pytest.mark.parametrize("masters", [2, 3, 5, 7])
def test_an_evenly_split_cluster_gets_an_even_share_of_partitions(masters: int) -> None:
    """The ranges `redis-cli --cluster create` hands out: each master gets count/masters,
    give or take one. Naive tags `{0}`..`{31}` split 13/11/8 over 3 masters; these 11/11/10."""
    bounds = [m * 16384 // masters for m in range(masters + 1)]

    def master(slot: int) -> int:
        return next(m for m in range(masters) if bounds[m] <= slot < bounds[m + 1])

    share = Counter(master(slot_of(name)) for name in partition_names(32))
    assert len(share) == masters
    assert max(share.values()) - min(share.values()) <= 1


def test_channels_spread_over_partitions_the_same_way_everywhere() -> None:
    channels = [f"pc:user:{i:032x}" for i in range(3200)]
    counts = Counter(partition_of(c, 32) for c in channels)
    assert len(counts) == 32 and min(counts.values()) > 50
    assert partition_of("pc:poke", 32) == partition_of("pc:poke", 32)


def test_wrap_carries_the_channel_and_any_bytes() -> None:
    data = bytes(range(256))
    assert unwrap(wrap("pc:user:abc", data)) == ("pc:user:abc", data)
    assert unwrap(wrap("pc:poke", b"")) == ("pc:poke", b"")
    assert unwrap(b"") is None and unwrap(b"\x09short") is None and unwrap(b"\x02\xff\xfe") is None
    with pytest.raises(ValueError, match="255"):
        wrap("x" * 256, b"")
