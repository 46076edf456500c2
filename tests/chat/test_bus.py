"""One contract for every bus backend (chat/bus.py): the in-process one, Redis pub/sub
(against the real test Redis), the same on a Sentinel set, and sharded pub/sub on a
3-master Redis Cluster. Several bus objects play several `web` processes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from chat import bus_publisher, redisconn, resp
from chat.bus import Bus
from chat.bus_cluster import ClusterBus
from chat.bus_memory import MemoryBus, MemoryExchange
from chat.bus_redis import CONFIRM_TIMEOUT_S, RedisBus
from tests.support.bus_inbox import Inbox, started
from tests.support.redis_topology import RedisClusterSet, SentinelSet
from tests.support.servers import Servers, wait_until

_probes = itertools.count()


@dataclass
class Network:
    """Makes started buses ("processes") on one backend, and can cut their connections."""

    make_bus: Callable[[], Bus]
    cut: Callable[[], Awaitable[None]]
    buses: list[Bus] = field(default_factory=list)
    # On a cluster a post reaches every process subscribed to the channel's partition, so
    # it counts at least the channel's subscribers (chat/bus_cluster.py), not exactly.
    exact_receivers: bool = True

    async def start(self) -> tuple[Bus, Inbox]:
        bus, inbox = self.make_bus(), Inbox()
        await bus.start(inbox.handler, inbox.on_reconnect)
        self.buses.append(bus)
        return bus, inbox


@pytest.fixture(params=["memory", "redis", "sentinel", "cluster"])
async def network(
    request: pytest.FixtureRequest, servers: Servers, redis_client: redis.Redis
) -> AsyncIterator[Network]:
    closing: list[redisconn.RedisClient] = []
    if request.param == "memory":
        exchange = MemoryExchange()
        net = Network(lambda: MemoryBus(exchange), lambda: _memory_cut(net))
    elif request.param == "redis":

        async def redis_cut() -> None:
            await redis_client.client_kill_filter(_type="pubsub")

        net = Network(lambda: RedisBus(servers.redis.url), redis_cut)
    elif request.param == "sentinel":
        sentinels: SentinelSet = request.getfixturevalue("shared_sentinels")
        topology = redisconn.parse(sentinels.url)

        async def sentinel_cut() -> None:
            sentinels.master_node().command("CLIENT", "KILL", "TYPE", "pubsub")

        net = Network(lambda: RedisBus(resolve=redisconn.MasterResolver(topology)), sentinel_cut)
    else:
        cluster: RedisClusterSet = request.getfixturevalue("shared_cluster")
        topology = redisconn.parse(cluster.url)
        client = redisconn.client(topology)
        assert isinstance(client, RedisCluster)
        closing.append(client)

        async def cluster_cut() -> None:
            for node in cluster.master_nodes():  # sharded subscribers count as pubsub clients
                node.command("CLIENT", "KILL", "TYPE", "pubsub")

        net = Network(lambda: ClusterBus(topology, client, 32), cluster_cut, exact_receivers=False)
    yield net
    for bus in net.buses:
        await bus.close()
    for done in closing:
        await done.aclose()


async def _memory_cut(net: Network) -> None:
    for bus in net.buses:
        assert isinstance(bus, MemoryBus)
        await bus.simulate_reconnect()


async def _subscribed(publisher: Bus, inbox: Inbox, channel: str) -> None:
    """Redis confirms a SUBSCRIBE asynchronously: probe until the channel really delivers."""

    async def delivered() -> bool:
        probe = f"probe:{next(_probes)}".encode()
        await publisher.publish(channel, probe)
        await asyncio.sleep(0.01)
        return (channel, probe) in inbox.got

    await wait_until(delivered, timeout=5)


async def test_delivers_to_every_subscriber_including_the_publisher(network: Network) -> None:
    a, a_in = await network.start()
    b, b_in = await network.start()
    c, c_in = await network.start()
    assert a.healthy and b.healthy and c.healthy
    for bus, inbox in ((a, a_in), (b, b_in)):
        await bus.subscribe("pc:user:u1")
        await _subscribed(c, inbox, "pc:user:u1")
    payload = b'origin|conv|7|\n{"type":"message","body":"\\u00e9\\n"}\x00\xff'
    assert await a.publish("pc:user:u1", payload) is True
    await wait_until(lambda: a_in.on("pc:user:u1") and b_in.on("pc:user:u1"), timeout=5)
    assert a_in.on("pc:user:u1") == [payload], "the publisher's own subscription gets it too"
    assert b_in.on("pc:user:u1") == [payload]
    assert c_in.got == [], "no subscription, nothing delivered"
    assert await c.publish("pc:nobody-listens", b"x") is True


async def test_order_is_kept_per_channel(network: Network) -> None:
    a, _ = await network.start()
    b, b_in = await network.start()
    await b.subscribe("pc:user:u1")
    await b.subscribe("pc:user:u2")
    await _subscribed(a, b_in, "pc:user:u1")
    await _subscribed(a, b_in, "pc:user:u2")
    for i in range(200):
        await a.publish("pc:user:u1" if i % 3 else "pc:user:u2", str(i).encode())
    await wait_until(lambda: len(b_in.on("pc:user:u1")) + len(b_in.on("pc:user:u2")) == 200, timeout=5)
    assert b_in.on("pc:user:u1") == [str(i).encode() for i in range(200) if i % 3]
    assert b_in.on("pc:user:u2") == [str(i).encode() for i in range(200) if not i % 3]


async def test_posts_keep_their_order_among_publishes(network: Network) -> None:
    """`post` is the hot path's publish: not awaited, yet in order with every other one."""
    a, _ = await network.start()
    b, b_in = await network.start()
    await b.subscribe("pc:user:u1")
    await _subscribed(a, b_in, "pc:user:u1")
    for i in range(300):
        if i % 50 == 49:
            assert await a.publish("pc:user:u1", str(i).encode()) is True
        else:
            a.post("pc:user:u1", str(i).encode())
    await wait_until(lambda: len(b_in.on("pc:user:u1")) == 300, timeout=5)
    assert b_in.on("pc:user:u1") == [str(i).encode() for i in range(300)]


async def test_subscribe_returns_once_in_effect_and_post_counts_receivers(network: Network) -> None:
    """The hub learns "only this process holds the channel" from both: a subscription in
    effect, and a PUBLISH that reached exactly one subscriber."""
    a, a_in = await network.start()
    b, b_in = await network.start()
    channel = "pc:user:u7"
    assert not a.confirmed(channel)
    await a.subscribe(channel)
    assert a.confirmed(channel) and not b.confirmed(channel)
    counts: list[int] = []
    b.post(channel, b"first", counts.append)  # no probing: the subscription is in effect
    await wait_until(lambda: len(counts) == 1, timeout=5)
    await wait_until(lambda: a_in.on(channel) == [b"first"], timeout=5)
    await b.subscribe(channel)
    a.post(channel, b"second", counts.append)
    await wait_until(lambda: len(counts) == 2, timeout=5)
    a.post("pc:user:nobody", b"x", counts.append)
    await wait_until(lambda: len(counts) == 3, timeout=5)
    if network.exact_receivers:
        assert counts == [1, 2, 0]
    else:  # never fewer than the channel's subscribers: the hub's solo rule stays safe
        assert counts[0] >= 1 and counts[1] >= 2 and counts[2] >= 0
    await wait_until(lambda: b_in.on(channel) == [b"second"], timeout=5)
    await a.unsubscribe(channel)
    assert not a.confirmed(channel)


async def test_unsubscribe_stops_delivery_and_subscribe_is_idempotent(network: Network) -> None:
    a, _ = await network.start()
    b, b_in = await network.start()
    await b.subscribe("pc:queue")
    await b.subscribe("pc:queue")
    await _subscribed(a, b_in, "pc:queue")
    await a.publish("pc:queue", b"one")
    await wait_until(lambda: b_in.on("pc:queue") == [b"one"], timeout=5)
    await b.unsubscribe("pc:queue")
    await b.unsubscribe("pc:never-subscribed")
    await a.publish("pc:queue", b"two")
    # A marker on another channel proves "two" had its chance to arrive.
    await b.subscribe("pc:marker")
    await _subscribed(a, b_in, "pc:marker")
    assert b_in.on("pc:queue") == [b"one"]
    await b.subscribe("pc:queue")
    await _subscribed(a, b_in, "pc:queue")
    await a.publish("pc:queue", b"three")
    await wait_until(lambda: b_in.on("pc:queue") == [b"one", b"three"], timeout=5)


async def test_a_closed_bus_hears_nothing(network: Network) -> None:
    a, _ = await network.start()
    b, b_in = await network.start()
    c, c_in = await network.start()
    for bus, inbox in ((b, b_in), (c, c_in)):
        await bus.subscribe("pc:stats")
        await _subscribed(a, inbox, "pc:stats")
    await b.close()
    network.buses.remove(b)
    await a.publish("pc:stats", b"after close")
    await wait_until(lambda: c_in.on("pc:stats") == [b"after close"], timeout=5)
    assert b_in.on("pc:stats") == []


async def test_after_a_lost_connection_it_resubscribes_and_says_so(network: Network) -> None:
    a, _ = await network.start()
    b, b_in = await network.start()
    await b.subscribe("pc:user:u1")
    await _subscribed(a, b_in, "pc:user:u1")
    assert b_in.reconnects == 0
    await network.cut()
    # The owner is told, so it can catch up from PostgreSQL what the bus may have lost.
    await wait_until(lambda: b_in.reconnects >= 1, timeout=10)
    await wait_until(lambda: b.healthy, timeout=10)
    await _subscribed(a, b_in, "pc:user:u1")
    await a.publish("pc:user:u1", b"after")
    await wait_until(lambda: b_in.on("pc:user:u1") == [b"after"], timeout=5)


async def test_memory_bus_down_publishes_nothing() -> None:
    """Only the memory exchange can be switched off from a test; the Redis outage is
    covered by the fault tests with a real Redis stopped."""
    exchange = MemoryExchange()
    a, b, b_in = MemoryBus(exchange), MemoryBus(exchange), Inbox()
    await a.start(Inbox().handler, Inbox().on_reconnect)
    await b.start(b_in.handler, b_in.on_reconnect)
    await b.subscribe("pc:x")
    exchange.up = False
    assert not a.healthy
    assert await a.publish("pc:x", b"lost") is False
    exchange.up = True
    assert await a.publish("pc:x", b"kept") is True
    assert b_in.on("pc:x") == [b"kept"]


@contextlib.asynccontextmanager
async def _redis_pair(url: str, channel: str) -> AsyncIterator[tuple[RedisBus, Inbox, Inbox]]:
    """Two started Redis buses ("processes"): `b` subscribed to `channel`, hearing `a`."""
    a, b = RedisBus(url), RedisBus(url)
    a_in, b_in = Inbox(), Inbox()
    await a.start(a_in.handler, a_in.on_reconnect)
    await b.start(b_in.handler, b_in.on_reconnect)
    try:
        await b.subscribe(channel)
        await _subscribed(a, b_in, channel)
        yield a, a_in, b_in
    finally:
        await a.close()
        await b.close()


async def test_redis_publishes_unanswered_when_the_publisher_drops_are_sent_again(servers: Servers) -> None:
    """The publisher connection dies with PUBLISHes written but not answered. They may not
    have reached anyone, and the other processes' subscribers noticed nothing, so the bus
    writes them again on a new connection (receivers drop repeats by seq)."""
    async with _redis_pair(servers.redis.url, "pc:user:u9") as (a, a_in, b_in):
        heard: list[int] = []
        for i in range(3):
            a.post("pc:user:u9", b"ring %d" % i, heard.append)
        a.publisher._flush()  # written now, answered later
        assert a.publisher._publisher is not None
        a.publisher._publisher.abort()
        await wait_until(lambda: len(heard) == 3, timeout=10)
        assert heard == [1, 1, 1], "answered on the new connection: one subscriber each"
        rings = [d for d in b_in.on("pc:user:u9") if d.startswith(b"ring")]
        assert sorted(set(rings)) == [b"ring 0", b"ring 1", b"ring 2"]
        assert a_in.reconnects == b_in.reconnects == 0, "nothing was lost, nobody needs to catch up"
        assert await a.publish("pc:user:u9", b"after") is True


async def test_redis_publishes_in_the_retry_window_wait_for_it(servers: Servers) -> None:
    """Just after Redis refused the publisher, new rings (the joins a reconnect sends, say)
    wait for the next attempt instead of being dropped."""
    async with _redis_pair(servers.redis.url, "pc:user:u8") as (a, _, b_in):
        a.publisher._drop_publisher()
        a.publisher._retry_at = time.monotonic() + 0.3  # as after a refused connect
        assert await a.publish("pc:user:u8", b"in the window") is True
        await wait_until(lambda: b"in the window" in b_in.on("pc:user:u8"), timeout=5)


async def test_a_redis_publisher_that_never_answers_is_dropped(tmp_path: object) -> None:
    """A connection that takes writes and answers nothing (silently dead) must not hang
    publish(): it is dropped, the publish is tried once more, then reported failed."""
    writes: list[bytes] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writes.append(data)
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bus = RedisBus(f"redis://127.0.0.1:{port}")
    inbox = Inbox()
    await bus.start(inbox.handler, inbox.on_reconnect)
    try:
        started = time.monotonic()
        assert await asyncio.wait_for(bus.publish("pc:user:u7", b"x"), 10) is False
        assert time.monotonic() - started < 2 * bus_publisher.PUBLISH_TIMEOUT_S + 2
        assert sum(w.count(b"PUBLISH") for w in writes) == 2, "written once, then once more"
        assert not bus.healthy, "a lost ring drops the subscriber: the owner will catch up"
    finally:
        await bus.close()
        server.close()
        await server.wait_closed()


class HeldSubscriptions(RedisBus):
    """A Redis bus whose subscriber holds Redis's (un)subscribe replies for one channel
    until the test releases them, one at a time and in Redis's order: the round trip of a
    SUBSCRIBE, made as long as the test needs."""

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(url)
        self.channel = channel.encode()
        self.held: list[resp.Reply] | None = None  # None: nothing held

    def _on_subscriber_reply(self, reply: resp.Reply) -> None:
        if (
            self.held is not None
            and isinstance(reply, list)
            and len(reply) == 3
            and reply[0] in (b"subscribe", b"unsubscribe")
            and reply[1] == self.channel
        ):
            self.held.append(reply)
            return
        super()._on_subscriber_reply(reply)

    def release_one(self) -> None:
        assert self.held
        super()._on_subscriber_reply(self.held.pop(0))


async def test_a_subscribe_confirmation_releases_only_its_own_subscribe(servers: Servers) -> None:
    """Subscribed, unsubscribed and subscribed again within one round trip: Redis's first
    confirmation answers the first SUBSCRIBE, and must not release the second subscribe
    (its caller would take the channel for heard while Redis has not yet taken it again).
    Before the fix one waiter per channel was kept: the second replaced the first, the first
    confirmation released the second, and the first waited out CONFIRM_TIMEOUT_S."""
    channel = "pc:user:race"
    a = HeldSubscriptions(servers.redis.url, channel)
    b = RedisBus(servers.redis.url)
    async with started(a, b) as (a_in, _):
        a.held = []
        first = asyncio.create_task(a.subscribe(channel))
        await wait_until(lambda: len(a.held or ()) == 1, timeout=10)
        await a.unsubscribe(channel)
        second = asyncio.create_task(a.subscribe(channel))
        await wait_until(lambda: len(a.held or ()) == 3, timeout=10)

        a.release_one()  # the first SUBSCRIBE's confirmation
        for _ in range(20):  # every turn the second would need to finish
            await asyncio.sleep(0)
        assert not second.done(), "released by the first subscribe's confirmation"
        assert not a.confirmed(channel)
        await asyncio.wait_for(asyncio.shield(first), CONFIRM_TIMEOUT_S / 2)

        a.release_one()  # the UNSUBSCRIBE's
        assert not a.confirmed(channel)
        assert not second.done()
        a.release_one()  # the second SUBSCRIBE's
        await asyncio.wait_for(second, CONFIRM_TIMEOUT_S / 2)
        assert a.confirmed(channel)
        a.held = None
        counts: list[int] = []
        b.post(channel, b"heard", counts.append)
        await wait_until(lambda: a_in.on(channel) == [b"heard"], timeout=10)
        assert counts == [1]
