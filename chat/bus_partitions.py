"""The bus's channels on a Redis Cluster: a bounded set of sharded channels (partitions)
that every logical channel maps onto (PRODUCT.md §11; chat/bus_cluster.py carries them).

A cluster spreads keys, and sharded channels, by hash slot (CRC16 of the name, or of its
`{hash tag}`, mod 16384), and a fresh cluster hands each master one contiguous run of
slots. Partition tags named naively (`{0}`, `{1}`, ...) land wherever their CRC16 throws
them: Centrifugo warns that such tags leave nodes idle (`{0}`..`{31}` split 13/11/8 over
three masters; with fewer partitions than that, a master may get none). Here
partition i's tag is the first of `p<i>.0`, `p<i>.1`, ... whose slot falls in the i-th of
N equal runs of the slot space, so the partitions sit evenly spaced over the slots and
so over the masters of any evenly split cluster. Every process computes the same names.

A ring on a partition carries its logical channel in front of the payload: one byte of
length, then the name (channels are short ASCII names, chat/delivery/hub.py).
"""

from __future__ import annotations

import zlib

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

DEFAULT_PARTITIONS = 32
MAX_PARTITIONS = 1024
_PREFIX = "pc:bus:"


def partition_names(count: int) -> tuple[str, ...]:
    """The sharded channel of each partition, evenly spaced over the slot space."""
    if not 1 <= count <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be between 1 and {MAX_PARTITIONS}")
    names = []
    for i in range(count):
        low = i * REDIS_CLUSTER_HASH_SLOTS // count
        high = (i + 1) * REDIS_CLUSTER_HASH_SLOTS // count
        attempt = 0
        while True:
            name = f"{_PREFIX}{{p{i}.{attempt}}}"
            if low <= key_slot(name.encode()) < high:
                names.append(name)
                break
            attempt += 1
    return tuple(names)


def slot_of(name: str) -> int:
    return int(key_slot(name.encode()))


def partition_of(channel: str, count: int) -> int:
    """Which partition carries a logical channel: the same on every process."""
    return zlib.crc32(channel.encode()) % count


def wrap(channel: str, data: bytes) -> bytes:
    name = channel.encode()
    if len(name) > 255:
        raise ValueError("a bus channel name is at most 255 bytes")
    return bytes((len(name),)) + name + data


def unwrap(payload: bytes) -> tuple[str, bytes] | None:
    """(channel, data), or None for a payload that is not a wrapped ring."""
    if not payload:
        return None
    end = 1 + payload[0]
    if len(payload) < end:
        return None
    try:
        channel = payload[1:end].decode()
    except UnicodeDecodeError:
        return None
    return channel, payload[end:]
