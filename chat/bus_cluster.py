"""The bus on a Redis Cluster: sharded pub/sub (SSUBSCRIBE/SPUBLISH) over a bounded set of
partitions (chat/bus_partitions.py), on bare RESP connections (chat/resp.py).

Every process subscribes every partition, each with its own SSUBSCRIBE (the channels of
one SSUBSCRIBE must share a slot; each partition has its own), on one subscriber
connection per master that owns partitions, and publishes each ring on its logical
channel's partition through one publisher connection per master. A ring reaches every
process; each hands on only the rings of the channels it holds. Rings of one logical
channel keep their order (one partition, one connection); rings of different channels
may overtake each other, which nothing relies on.

Supervision is all or nothing, as simple as a topology change deserves: one connection
lost, silent, or refused (MOVED after a slot migration, an unexpected SUNSUBSCRIBE that
Redis sends when a slot moves away), and every connection is dropped, the slot map read
again (redis-py's cluster client, chat/redisconn.py), everything reconnected with capped,
jittered back-off, and `on_reconnect` called so the owner catches up from PostgreSQL.
Publishes while down fail at once (publish() returns False); that catch-up repairs them.

`on_receivers` counts the processes subscribed to the partition, not to the channel:
never fewer, so the hub's solo rule (chat/delivery/hub.py: one receiver, itself) only
ever errs on the side of ringing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import hiredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from chat import bus_partitions, resp
from chat.bus import Handler, Receivers, Reconnected
from chat.bus_publisher import CONNECT_TIMEOUT_S, PUBLISH_TIMEOUT_S
from chat.redisconn import RedisTopology, node_url

log = logging.getLogger("peerchat.bus")
CONFIRM_TIMEOUT_S = 3.0  # every partition's SSUBSCRIBE confirmed within this, or retry
HEALTH_S = 5.0  # ping each subscriber this often; two silent periods mean it is dead


@dataclass(slots=True)
class _Publish:
    done: asyncio.Future[bool] | None
    on_receivers: Receivers | None


@dataclass(slots=True)
class _Link:
    """One master: a subscriber and a publisher connection."""

    address: resp.Address
    partitions: list[int]
    subscriber: resp.Wire | None = None
    publisher: resp.Wire | None = None
    pending: deque[tuple[_Publish | None, float]] = field(default_factory=deque)
    outbox: list[bytes] = field(default_factory=list)
    outbox_items: list[_Publish] = field(default_factory=list)

    def wires(self) -> list[resp.Wire]:
        return [w for w in (self.subscriber, self.publisher) if w is not None]


class ClusterBus:
    def __init__(self, topology: RedisTopology, client: RedisCluster, partitions: int) -> None:
        self._topology = topology
        self._client = client
        self.partitions = bus_partitions.partition_names(partitions)
        self._index = {name: i for i, name in enumerate(self.partitions)}
        self._channels: set[str] = set()
        self._links: list[_Link] = []
        self._by_partition: dict[int, _Link] = {}
        self._confirmed: set[int] = set()
        self._handler: Handler | None = None
        self._on_reconnect: Reconnected | None = None
        self._task: asyncio.Task[None] | None = None
        self._after_reconnect: asyncio.Task[None] | None = None
        self._healthy = False
        self._closed = False
        self._connected = asyncio.Event()
        self._reset = asyncio.Event()
        self._all_confirmed = asyncio.Event()
        self._flush_soon = False

    # ------------------------------------------------------------------ the Bus protocol

    async def start(self, handler: Handler, on_reconnect: Reconnected) -> None:
        self._handler, self._on_reconnect = handler, on_reconnect
        self._task = asyncio.create_task(self._run(), name="redis-cluster-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5)

    async def close(self) -> None:
        self._closed = True
        for task in (self._after_reconnect, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._drop_links()

    @property
    def healthy(self) -> bool:
        return self._healthy

    def masters(self) -> dict[str, list[int]]:
        """Which master ("host:port") holds which partitions now (tests, docs)."""
        return {f"{link.address.host}:{link.address.port}": list(link.partitions) for link in self._links}

    async def publish(self, channel: str, data: bytes) -> bool:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue(channel, data, _Publish(done, None))
        return await done

    def post(self, channel: str, data: bytes, on_receivers: Receivers | None = None) -> None:
        self._queue(channel, data, _Publish(None, on_receivers))

    def confirmed(self, channel: str) -> bool:
        return self._healthy and channel in self._channels

    async def subscribe(self, channel: str) -> None:
        # Every partition is subscribed while the bus is up: the channel is heard from now.
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    # ------------------------------------------------------------------ publishing

    def _queue(self, channel: str, data: bytes, item: _Publish) -> None:
        partition = bus_partitions.partition_of(channel, len(self.partitions))
        link = self._by_partition.get(partition)
        if not self._healthy or link is None or link.publisher is None or not link.publisher.up:
            _fail(item)  # the reconnect that follows catches everyone up
            return
        link.outbox.append(
            resp.command("SPUBLISH", self.partitions[partition], bus_partitions.wrap(channel, data))
        )
        link.outbox_items.append(item)
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Everything queued in one loop turn goes out as one write per master."""
        self._flush_soon = False
        now = time.monotonic()
        for link in self._links:
            if not link.outbox:
                continue
            batch, items = link.outbox, link.outbox_items
            link.outbox, link.outbox_items = [], []
            if link.publisher is None or not link.publisher.up:
                for item in items:
                    _fail(item)
                continue
            link.publisher.send(b"".join(batch))
            link.pending.extend((item, now) for item in items)

    def _on_publish_reply(self, link: _Link, reply: resp.Reply) -> None:
        if not link.pending:
            return
        item, _ = link.pending.popleft()
        if item is None:  # the reply to AUTH
            if isinstance(reply, hiredis.ReplyError):
                log.warning("redis refused the bus's credentials")
                self._reset.set()
            return
        if not isinstance(reply, int):
            # MOVED: the partition's slot lives elsewhere now. Read the map again.
            _fail(item)
            log.warning("redis cluster refused a bus publish: %s", str(reply).split(" ", 1)[0])
            self._reset.set()
            return
        if item.done is not None and not item.done.done():
            item.done.set_result(True)
        if item.on_receivers is not None:
            try:
                item.on_receivers(reply)
            except Exception:
                log.exception("publish callback failed")

    # ------------------------------------------------------------------ subscribing

    def _on_subscriber_reply(self, reply: resp.Reply) -> None:
        if isinstance(reply, list) and len(reply) == 3:
            kind = reply[0]
            if kind == b"smessage":
                unwrapped = bus_partitions.unwrap(reply[2])
                if unwrapped is None or unwrapped[0] not in self._channels or self._handler is None:
                    return
                try:
                    self._handler(*unwrapped)
                except Exception:
                    log.exception("bus handler failed")
                return
            index = self._index.get(reply[1].decode()) if isinstance(reply[1], bytes) else None
            if kind == b"ssubscribe" and index is not None:
                self._confirmed.add(index)
                if len(self._confirmed) == len(self.partitions):
                    self._all_confirmed.set()
                return
            if kind == b"sunsubscribe":
                # We never unsubscribe a partition: Redis did, because its slot moved.
                log.warning("redis cluster moved a bus partition; reading the slot map again")
                self._reset.set()
                return
        if isinstance(reply, hiredis.ReplyError):
            log.warning("redis cluster refused a bus command: %s", str(reply).split(" ", 1)[0])
            self._reset.set()
        # Anything else is a PONG or an AUTH's OK: heard, nothing to do.

    # ------------------------------------------------------------------ supervision

    def _candidates(self) -> list[tuple[str, int]]:
        """Nodes to ask for the slot map: those the keys' client knows of (it follows the
        cluster as it changes), the masters the bus was on, then the URL's seeds."""
        known = [(n.host, int(n.port)) for n in self._client.nodes_manager.nodes_cache.values()]
        random.shuffle(known)
        ours = [(link.address.host, link.address.port) for link in self._links]
        return list(dict.fromkeys([*known, *ours, *self._topology.hosts]))

    async def _map(self) -> list[_Link]:
        """Which master owns each partition now, from CLUSTER SLOTS as the first node that
        answers it with every partition's slot covered says."""
        for host, port in self._candidates():
            try:
                reply = await resp.ask(
                    resp.parse_url(node_url(self._topology, host, port)),
                    "CLUSTER",
                    "SLOTS",
                    timeout=CONNECT_TIMEOUT_S,
                )
            except (OSError, TimeoutError):
                continue
            owners = _owners(reply, host)
            by_node: dict[tuple[str, int], _Link] = {}
            for i, name in enumerate(self.partitions):
                owner = owners(bus_partitions.slot_of(name))
                if owner is None:
                    break
                link = by_node.get(owner)
                if link is None:
                    address = resp.parse_url(node_url(self._topology, *owner))
                    link = by_node[owner] = _Link(address, [])
                link.partitions.append(i)
            else:
                return list(by_node.values())
        raise OSError("no cluster node answered with a slot map covering every bus partition")

    async def _open(self, links: list[_Link]) -> None:
        for link in links:
            link.subscriber = await resp.connect(link.address, self._on_subscriber_reply, CONNECT_TIMEOUT_S)
            link.publisher = await resp.connect(
                link.address, functools.partial(self._on_publish_reply, link), CONNECT_TIMEOUT_S
            )
            if link.address.password is not None:
                link.pending.append((None, time.monotonic()))
            for wire in link.wires():
                wire.on_lost = self._reset.set
            for i in link.partitions:
                link.subscriber.send(resp.command("SSUBSCRIBE", self.partitions[i]))
        await asyncio.wait_for(self._all_confirmed.wait(), CONFIRM_TIMEOUT_S)

    async def _run(self) -> None:
        delay = 0.05
        first = True
        while not self._closed:
            self._reset.clear()
            self._all_confirmed.clear()
            self._confirmed.clear()
            try:
                links = await self._map()
                self._links = links
                await self._open(links)
                if self._closed:
                    return
                self._by_partition = {i: link for link in links for i in link.partitions}
                self._healthy = True
                self._connected.set()
                if not first:
                    log.warning("redis cluster bus reconnected; catching up from PostgreSQL")
                    if self._after_reconnect is not None:
                        self._after_reconnect.cancel()
                    self._after_reconnect = asyncio.create_task(self._reconnected(), name="bus-reconnected")
                first = False
                delay = 0.05
                await self._watch()
                if self._healthy:
                    log.warning("redis cluster bus lost")
            except (OSError, TimeoutError, RedisError) as exc:
                if self._healthy or first:
                    log.warning("redis cluster bus unreachable: %s", type(exc).__name__)
            finally:
                self._healthy = False
                self._drop_links()
            first = False
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    async def _watch(self) -> None:
        """Until a connection is lost or refuses: ping the subscribers, and drop a publisher
        that leaves a publish unanswered for PUBLISH_TIMEOUT_S."""
        while not self._closed:
            pinged = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reset.wait(), min(HEALTH_S, PUBLISH_TIMEOUT_S))
            if self._reset.is_set():
                return
            now = time.monotonic()
            for link in self._links:
                if link.pending and now - link.pending[0][1] >= PUBLISH_TIMEOUT_S:
                    log.warning("redis cluster publisher answered nothing for %.0f s", PUBLISH_TIMEOUT_S)
                    return
                sub = link.subscriber
                if sub is None or (sub.last_heard < pinged and now - sub.last_heard > 2 * HEALTH_S):
                    log.warning("redis cluster bus silent for %.0f s; reconnecting", 2 * HEALTH_S)
                    return
                sub.send(resp.command("PING"))

    async def _reconnected(self) -> None:
        if self._on_reconnect is not None:
            try:
                await self._on_reconnect()
            except Exception:
                log.exception("catching up after a bus reconnect failed")

    def _drop_links(self) -> None:
        links, self._links, self._by_partition = self._links, [], {}
        for link in links:
            for wire in link.wires():
                wire.on_lost = None
                wire.abort()
            for item, _ in link.pending:
                if item is not None:
                    _fail(item)
            for item in link.outbox_items:
                _fail(item)
            link.pending.clear()
            link.outbox, link.outbox_items = [], []


def _owners(reply: resp.Reply, asked: str) -> Callable[[int], tuple[str, int] | None]:
    """slot → its master (host, port), from a CLUSTER SLOTS reply (None: not covered)."""
    ranges: list[tuple[int, int, tuple[str, int]]] = []
    if isinstance(reply, list):
        for entry in reply:
            if isinstance(entry, list) and len(entry) >= 3 and isinstance(entry[2], list):
                host = entry[2][0].decode() if isinstance(entry[2][0], bytes) else ""
                ranges.append((int(entry[0]), int(entry[1]), (host or asked, int(entry[2][1]))))

    def owner(slot: int) -> tuple[str, int] | None:
        return next((node for low, high, node in ranges if low <= slot <= high), None)

    return owner


def _fail(item: _Publish) -> None:
    if item.done is not None and not item.done.done():
        item.done.set_result(False)
