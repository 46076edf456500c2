"""Every Redis user of a `web` process on a real Sentinel set and a real 3-master cluster
(PRODUCT.md §11), from Debian's Redis 7 (tests/support/redis_topology.py): the bus,
presence, the socket cap and the rate limit's script; the bus's partitions and presence's
keys spread over every master; the bus follows a Sentinel promotion, a cluster master's
failover and a slot migration, and asks its owner to catch up each time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from chat import bus_partitions, redisconn
from chat.bus import Bus
from chat.bus_cluster import ClusterBus
from chat.bus_redis import RedisBus
from chat.config import Settings
from chat.presence_redis import RedisPresence
from chat.redis_keys import identity_key
from chat.socket_cap import SocketCap
from chat.web.ratelimit import TRANSCRIPTS, Limiter
from tests.support.bus_inbox import Inbox, started
from tests.support.redis_topology import RedisClusterSet, SentinelSet, redis_cluster_set, sentinel_set
from tests.support.servers import wait_until

SETTINGS = Settings(database_url="-", redis_url="-", jwt_secret="t" * 32, max_sockets_per_user=2)
PARTITIONS = 32


def name(role: str, sub: str) -> str:
    return identity_key(SETTINGS, role, sub)


@pytest.fixture
def cluster_set(shared_cluster: RedisClusterSet) -> RedisClusterSet:
    return shared_cluster


@pytest.fixture
def sentinels(shared_sentinels: SentinelSet) -> SentinelSet:
    return shared_sentinels


@pytest.fixture(params=["sentinel", "cluster"])
async def topology(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[redisconn.RedisTopology, redisconn.RedisClient]]:
    holder: SentinelSet | RedisClusterSet = request.getfixturevalue(
        "sentinels" if request.param == "sentinel" else "cluster_set"
    )
    parsed = redisconn.parse(holder.url)
    client = redisconn.client(parsed)
    await client.flushall()
    yield parsed, client
    await client.aclose()


def make_bus(parsed: redisconn.RedisTopology, client: redisconn.RedisClient) -> Bus:
    if isinstance(client, RedisCluster):
        return ClusterBus(parsed, client, PARTITIONS)
    return RedisBus(resolve=redisconn.MasterResolver(parsed))


async def test_the_bus_carries_rings_between_processes(
    topology: tuple[redisconn.RedisTopology, redisconn.RedisClient],
) -> None:
    parsed, client = topology
    a, b = make_bus(parsed, client), make_bus(parsed, client)
    async with started(a, b) as (inbox_a, inbox_b):
        assert a.healthy and b.healthy
        # Enough channels to land on every partition.
        channels = [f"pc:user:{i:04x}" for i in range(200)]
        for channel in channels:
            await a.subscribe(channel)
            assert a.confirmed(channel)
        counts: list[int] = []
        for n in range(3):
            for channel in channels:
                b.post(channel, b"ring %d" % n, counts.append)
        assert await b.publish("pc:nobody-holds-this", b"x")
        await wait_until(lambda: len(inbox_a.got) == 3 * len(channels), timeout=10)
        # Each once, and in order per channel (a cluster's partitions may interleave).
        for channel in channels:
            assert [d for c, d in inbox_a.got if c == channel] == [b"ring 0", b"ring 1", b"ring 2"]
        assert not inbox_b.got, "b holds none of those channels"
        await wait_until(lambda: len(counts) == 3 * len(channels))
        assert all(n >= 1 for n in counts)
        await a.unsubscribe(channels[0])
        b.post(channels[0], b"after")
        b.post(channels[1], b"still")
        await wait_until(lambda: inbox_a.got[-1] == (channels[1], b"still"))
        assert (channels[0], b"after") not in inbox_a.got
        assert inbox_a.reconnects == inbox_b.reconnects == 0


async def test_partitions_spread_over_every_master(cluster_set: RedisClusterSet) -> None:
    parsed = redisconn.parse(cluster_set.url)
    client = redisconn.client(parsed)
    assert isinstance(client, RedisCluster)
    bus = ClusterBus(parsed, client, PARTITIONS)
    await bus.start(Inbox().handler, Inbox().on_reconnect)
    try:
        masters = bus.masters()
        assert set(masters) == {n.address for n in cluster_set.master_nodes()}
        shares = sorted(len(p) for p in masters.values())
        assert shares == [10, 11, 11], masters
        # Partitions are subscribed on demand: a channel on each one, and Redis itself
        # says every master has our subscriber on each of its partitions.
        for partition in range(PARTITIONS):
            await bus.subscribe(
                next(
                    c
                    for c in (f"pc:user:{i}" for i in range(10_000))
                    if bus_partitions.partition_of(c, PARTITIONS) == partition
                )
            )
        assert bus.subscribed_partitions() == set(range(PARTITIONS))
        for node in cluster_set.master_nodes():
            numsub = node.command(
                "PUBSUB", "SHARDNUMSUB", *(bus.partitions[i] for i in masters[node.address])
            )
            assert all(int(n) == 1 for n in numsub[1::2]), numsub
    finally:
        await bus.close()
        await client.aclose()


async def test_presence_works_and_its_keys_spread_over_every_master(
    topology: tuple[redisconn.RedisTopology, redisconn.RedisClient], cluster_set: RedisClusterSet
) -> None:
    parsed, client = topology
    presence = RedisPresence(client, 30.0, name)
    now = time.time()
    members = [f"m{i}" for i in range(300)]
    await presence.heartbeat([(m, "member", "c1") for m in members] + [("s1", "specialist", "c9")], now)
    assert await presence.online_among([*members, "stranger"], "member", now) == set(members)
    assert await presence.online_specialists(now) == {"s1"}
    assert await presence.is_online("s1", "specialist", now + 29)
    assert not await presence.is_online("s1", "specialist", now + 31)
    assert await presence.disconnect("s1", "specialist", "c9", now)
    assert await presence.online_specialists(now) == set()
    absent = await presence.absent_since(["s1", "s2"], now, mark=True)
    assert set(absent) == {"s1", "s2"} and absent["s2"][1] and not absent["s1"][1]
    await presence.heartbeat([("s1", "specialist", "c9")], now + 1)
    assert await presence.absent_since(["s1"], now + 1, mark=False) == {}
    assert not await presence.settled(now) and await presence.settled(now + 31)
    if parsed.kind == "cluster":
        per_master = Counter[str]()
        for node in cluster_set.master_nodes():
            with node.client() as direct:
                per_master[node.address] = sum(1 for _ in direct.scan_iter("pc:presence:user:*", count=1000))
        assert sum(per_master.values()) == 301 and len(per_master) == 3
        assert min(per_master.values()) > 60, per_master


async def test_the_socket_cap_and_the_rate_limit_scripts(
    topology: tuple[redisconn.RedisTopology, redisconn.RedisClient],
) -> None:
    _, client = topology
    cap = SocketCap(client, SETTINGS)
    for who in ("a", "b", "c"):  # on a cluster, three people most likely on three masters
        assert await cap.take("member", who, "s1") and await cap.take("member", who, "s2")
        assert not await cap.take("member", who, "s3"), "the cap is 2"
    await cap.give_back("member", "a", "s1")
    assert await cap.take("member", "a", "s3")
    cap.lease.suspect()  # every slot held here written again (a pipeline on a cluster)
    await cap.renew()
    assert not await SocketCap(client, SETTINGS).take("member", "a", "s4"), "a still holds s2 and s3"
    limiter = Limiter(client, SETTINGS)
    waits = [await limiter.wait_ms("sup", TRANSCRIPTS) for _ in range(TRANSCRIPTS.per_minute + 1)]
    assert waits[:-1] == [0] * TRANSCRIPTS.per_minute and waits[-1] > 0


async def test_the_sentinel_resolver_names_the_master_and_refuses_a_replica(sentinels: SentinelSet) -> None:
    resolver = redisconn.MasterResolver(redisconn.parse(sentinels.url))
    try:
        master = sentinels.master_node()
        assert (await resolver()).port == master.port
        replica = next(n for n in sentinels.nodes if n is not master)

        async def stale(service: str) -> tuple[str, int]:  # a sentinel not yet told of a promotion
            return "127.0.0.1", replica.port

        resolver._sentinels.discover_master = stale  # type: ignore[method-assign, assignment]
        with pytest.raises(RedisError, match="not a master"):
            await resolver()
    finally:
        await resolver.aclose()


@pytest.mark.slow
async def test_the_sentinel_bus_follows_a_promotion(tmp_path: Path) -> None:
    with sentinel_set(tmp_path) as sentinels:
        await _sentinel_bus_follows_a_promotion(sentinels)


async def _sentinel_bus_follows_a_promotion(sentinels: SentinelSet) -> None:
    parsed = redisconn.parse(sentinels.url)
    a, b = (
        RedisBus(resolve=redisconn.MasterResolver(parsed)),
        RedisBus(resolve=redisconn.MasterResolver(parsed)),
    )
    async with started(a, b) as (inbox_a, inbox_b):
        await a.subscribe("pc:user:x")
        await _delivers(b, inbox_a, "pc:user:x", b"before")
        old = await asyncio.to_thread(sentinels.kill_master)
        promoted_at = None
        new = await asyncio.to_thread(sentinels.wait_for_promotion, old)
        promoted_at = time.monotonic()
        assert new.address != old.address
        await wait_until(lambda: inbox_a.reconnects >= 1 and a.healthy and b.healthy, timeout=20)
        await _delivers(b, inbox_a, "pc:user:x", b"after")
        print(f"\nsentinel: delivering again {time.monotonic() - promoted_at:.1f} s after the promotion")
        # The old master comes back as a replica; the bus stays on the new master.
        await asyncio.to_thread(old.start)
        await asyncio.to_thread(sentinels.wait_settled)
        await _delivers(b, inbox_a, "pc:user:x", b"later")


@pytest.mark.slow
async def test_the_cluster_bus_follows_a_failover_and_a_slot_migration(tmp_path: Path) -> None:
    with redis_cluster_set(tmp_path) as cluster_set:
        await _cluster_bus_follows_a_failover_and_a_slot_migration(cluster_set)


async def _cluster_bus_follows_a_failover_and_a_slot_migration(cluster_set: RedisClusterSet) -> None:
    parsed = redisconn.parse(cluster_set.url)
    client = redisconn.client(parsed)
    assert isinstance(client, RedisCluster)
    a, b = ClusterBus(parsed, client, PARTITIONS), ClusterBus(parsed, client, PARTITIONS)
    async with started(a, b) as (inbox_a, inbox_b):
        channel = next(
            f"pc:user:{i}"
            for i in range(1000)
            if bus_partitions.partition_of(f"pc:user:{i}", PARTITIONS) == 0
        )
        slot = bus_partitions.slot_of(a.partitions[0])
        await a.subscribe(channel)
        await _delivers(b, inbox_a, channel, b"before")

        old = await asyncio.to_thread(cluster_set.kill_master, slot)
        new = await asyncio.to_thread(cluster_set.wait_for_promotion, old, slot)
        promoted_at = time.monotonic()
        await wait_until(lambda: inbox_a.reconnects >= 1 and a.healthy and b.healthy, timeout=20)
        await _delivers(b, inbox_a, channel, b"after failover")
        print(f"\ncluster: delivering again {time.monotonic() - promoted_at:.1f} s after the promotion")
        assert new.address in a.masters() and old.address not in a.masters()

        reconnects = inbox_a.reconnects
        target = next(n for n in cluster_set.master_nodes() if n.address != new.address)
        await asyncio.to_thread(cluster_set.migrate_slot, slot, target)
        await wait_until(
            lambda: 0 in a.masters().get(target.address, []) and a.healthy and b.healthy, timeout=20
        )
        assert inbox_a.reconnects > reconnects, "the owner was told to catch up"
        # b holds nothing on the partition, so it learns of the move from its first
        # publish there (MOVED): that one is lost, the next goes to the new master.
        await _delivers(b, inbox_a, channel, b"after migration")
        assert 0 in b.masters().get(target.address, []) and b.healthy
        await client.aclose()


async def _delivers(sender: Bus, inbox: Inbox, channel: str, data: bytes) -> None:
    """Published until it arrives: a ring sent while the bus reconnects is lost (and
    repaired from PostgreSQL by the owner), so the proof is that one gets through."""
    deadline = time.monotonic() + 20
    while (channel, data) not in inbox.got:
        assert time.monotonic() < deadline, f"{data!r} never arrived"
        await sender.publish(channel, data)
        await asyncio.sleep(0.1)
