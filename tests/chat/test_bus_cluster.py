"""The cluster bus at scale (chat/bus_cluster.py) on a real 3-master Redis Cluster: a
process subscribes only the partitions of the channels it holds, a lost master is
recovered alone with only its channels caught up, and with `cluster-require-full-coverage
no` the other masters' partitions keep delivering while a master with no replica is down.
The contract every bus keeps is tests/chat/test_bus.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from chat import bus_partitions, redisconn
from chat.bus_cluster import ClusterBus
from tests.support.bus_inbox import Inbox
from tests.support.redis_topology import RedisClusterSet, RedisNode, redis_cluster_set
from tests.support.servers import wait_until

PARTITIONS = 32


@dataclass
class Buses:
    client: RedisCluster
    topology: redisconn.RedisTopology
    started: list[ClusterBus] = field(default_factory=list)

    async def start(self) -> tuple[ClusterBus, Inbox]:
        bus, inbox = ClusterBus(self.topology, self.client, PARTITIONS), Inbox()
        await bus.start(inbox.handler, inbox.on_reconnect)
        self.started.append(bus)
        return bus, inbox


async def _buses(url: str) -> AsyncIterator[Buses]:
    topology = redisconn.parse(url)
    client = redisconn.client(topology)
    assert isinstance(client, RedisCluster)
    buses = Buses(client, topology)
    try:
        yield buses
    finally:
        for bus in buses.started:
            await bus.close()
        await client.aclose()


@pytest.fixture
async def shared_buses(shared_cluster: RedisClusterSet) -> AsyncIterator[Buses]:
    async for buses in _buses(shared_cluster.url):
        yield buses


def channel_on(partition: int, taken: int = 0) -> str:
    """A person's channel name that maps onto `partition` (the `taken`-th such)."""
    names = (f"pc:user:{i}" for i in range(100_000))
    found = [n for n in names if bus_partitions.partition_of(n, PARTITIONS) == partition]
    return found[taken]


def master_serving(cluster: RedisClusterSet, bus: ClusterBus, partition: int) -> RedisNode:
    return cluster.master_of_slot(bus_partitions.slot_of(bus.partitions[partition]))


def shard_subscribers(node: RedisNode, name: str) -> int:
    reply = node.command("PUBSUB", "SHARDNUMSUB", name)
    return int(reply[1])


def pubsub_client_ids(node: RedisNode) -> set[str]:
    raw = node.command("CLIENT", "LIST", "TYPE", "pubsub")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return {line.split()[0] for line in text.splitlines() if line.startswith("id=")}


async def _delivers(sender: ClusterBus, inbox: Inbox, channel: str, data: bytes, timeout: float = 20) -> None:
    """Published until it arrives (a ring sent while a partition is mapped again is lost,
    and repaired from PostgreSQL by the owner): the proof is that one gets through."""
    deadline = time.monotonic() + timeout
    while (channel, data) not in inbox.got:
        assert time.monotonic() < deadline, f"{data!r} on {channel} never arrived"
        await sender.publish(channel, data)
        await asyncio.sleep(0.05)


async def test_a_process_subscribes_only_the_partitions_of_its_channels(
    shared_cluster: RedisClusterSet, shared_buses: Buses
) -> None:
    a, a_in = await shared_buses.start()
    b, _ = await shared_buses.start()
    assert a.subscribed_partitions() == set()
    assert len(a.masters()) == 3  # every partition mapped for publishing, none heard
    mine = channel_on(5)
    node = master_serving(shared_cluster, a, 5)
    assert shard_subscribers(node, a.partitions[5]) == 0

    await a.subscribe(mine)
    assert a.subscribed_partitions() == {5} and a.confirmed(mine)
    assert shard_subscribers(node, a.partitions[5]) == 1

    # Rings of 200 people spread over every partition, then one for our person: only the
    # rings of partition 5 reach this process (in order, so the last one proves the rest).
    others = [f"pc:user:other-{i}" for i in range(200)]
    on_five = sum(1 for c in others if bus_partitions.partition_of(c, PARTITIONS) == 5)
    assert 0 < on_five < 20
    for channel in others:
        b.post(channel, b"not for a")
    b.post(mine, b"for a")  # no probing: a confirmed subscribe hears what follows it
    await wait_until(lambda: (mine, b"for a") in a_in.got, timeout=10)
    assert a.rings_heard == on_five + 1
    assert a.rings_for_others == on_five
    assert a_in.got == [(mine, b"for a")]

    # A second channel on the same partition needs no new subscription; the partition is
    # left only when its last channel goes.
    second = channel_on(5, taken=1)
    await a.subscribe(second)
    await a.unsubscribe(mine)
    assert a.subscribed_partitions() == {5} and a.confirmed(second) and not a.confirmed(mine)
    await a.unsubscribe(second)
    assert a.subscribed_partitions() == set()
    await wait_until(lambda: shard_subscribers(node, a.partitions[5]) == 0, timeout=5)

    # Left and taken again back to back: the SUNSUBSCRIBE's answer is told apart from one
    # Redis sends when a slot moves, and the new SSUBSCRIBE is in effect when it returns.
    await a.subscribe(mine)
    await a.unsubscribe(mine)
    await a.subscribe(mine)
    assert a.confirmed(mine)
    b.post(mine, b"again")
    await wait_until(lambda: (mine, b"again") in a_in.got, timeout=10)
    assert a_in.caught_up == [] and a.healthy


async def test_a_lost_master_is_recovered_alone_and_only_its_channels_caught_up(
    shared_cluster: RedisClusterSet, shared_buses: Buses
) -> None:
    a, a_in = await shared_buses.start()
    b, _ = await shared_buses.start()
    masters = a.masters()
    lost_address, lost_partitions = next(iter(masters.items()))
    kept_address, kept_partitions = next((m, p) for m, p in masters.items() if m != lost_address)
    on_lost, on_kept = channel_on(lost_partitions[0]), channel_on(kept_partitions[0])
    for channel in (on_lost, on_kept):
        await a.subscribe(channel)
    kept_node = shared_cluster.node(kept_address)
    kept_before = pubsub_client_ids(kept_node)
    assert kept_before

    # Every pub/sub connection to one master cut: only that master's link is remade.
    shared_cluster.node(lost_address).command("CLIENT", "KILL", "TYPE", "pubsub")
    await wait_until(lambda: len(a_in.caught_up) >= 1 and a.healthy, timeout=15)
    assert a_in.caught_up[0] == frozenset({on_lost}), "only the lost master's channels catch up"
    assert pubsub_client_ids(kept_node) == kept_before, "the other masters' links were kept"
    await _delivers(b, a_in, on_lost, b"after")
    await _delivers(b, a_in, on_kept, b"after")
    assert a.subscribed_partitions() == {lost_partitions[0], kept_partitions[0]}


@pytest.mark.slow
async def test_without_full_coverage_the_other_masters_keep_delivering(tmp_path: Path) -> None:
    with redis_cluster_set(tmp_path) as cluster:
        for node in cluster.nodes:
            node.command("CONFIG", "SET", "cluster-require-full-coverage", "no")
        async for buses in _buses(cluster.url):
            await _other_masters_keep_delivering(cluster, buses)


async def _other_masters_keep_delivering(cluster: RedisClusterSet, buses: Buses) -> None:
    a, a_in = await buses.start()
    b, _ = await buses.start()
    masters = a.masters()
    channels = {address: channel_on(partitions[0]) for address, partitions in masters.items()}
    for channel in channels.values():
        await a.subscribe(channel)
        await _delivers(b, a_in, channel, b"before")
    lost = master_serving(cluster, a, masters[next(iter(masters))][0])
    lost_channel = channels[lost.address]
    kept = {address: c for address, c in channels.items() if address != lost.address}

    # One master down for good: its replica first, so nobody can be promoted.
    cluster.replica_of(lost).kill()
    lost.kill()
    killed_at = time.monotonic()
    for round_ in range(3):  # before, while and after the others mark it failed
        for channel in kept.values():
            await _delivers(b, a_in, channel, f"during {round_}".encode(), timeout=5)
        await asyncio.sleep(1.0)
    await wait_until(lambda: not a.healthy and not b.healthy, timeout=10)
    assert await b.publish(lost_channel, b"lost") is False

    def marked_failed() -> bool:
        return any(i.address == lost.address and "fail" in i.flags for i in cluster.view())

    await wait_until(marked_failed, timeout=20)
    for channel in kept.values():
        await _delivers(b, a_in, channel, b"after the failure", timeout=5)
    print(f"\nother masters delivered throughout; {time.monotonic() - killed_at:.1f} s with one master down")
    assert all(only is not None and lost_channel in only for only in a_in.caught_up)

    # The master back (with its slots, no replica having taken them): its partitions return,
    # and only its channels are caught up.
    caught_up = len(a_in.caught_up)
    await asyncio.to_thread(lost.start)
    await wait_until(lambda: a.healthy and b.healthy, timeout=30)
    await _delivers(b, a_in, lost_channel, b"back")
    assert a_in.caught_up[caught_up:], "the owner was told to catch up the lost master's channels"
    assert all(only == frozenset({lost_channel}) for only in a_in.caught_up[caught_up:])
