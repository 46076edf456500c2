"""The bus on a Redis Cluster: sharded pub/sub (SSUBSCRIBE/SPUBLISH) over a bounded set of
partitions (chat/bus_partitions.py), on bare RESP connections (chat/resp.py).

**Partitions on demand.** A logical channel maps onto one partition; a process SSUBSCRIBEs
a partition only while it holds a channel on it (a person connected here, or a broadcast
channel it listens to), and SUNSUBSCRIBEs it when the last one leaves. `subscribe` returns
once Redis confirmed the partition's SSUBSCRIBE (at once if it already had), so a ring
published after it is heard. Each partition has its own SSUBSCRIBE (the channels of one
must share a slot), on one subscriber connection per master; rings are published on their
channel's partition through that master's publisher (chat/bus_publisher.py, with SPUBLISH).
Rings of one logical channel keep their order (one partition, one connection); rings of
different channels may overtake each other, which nothing relies on.

**Recovery per master.** A master's link fails alone: its subscriber lost, silent or
refused, its publisher unable to reconnect. Only its partitions are mapped again (`CLUSTER
SLOTS` from the nodes the keys' client knows, then the URL's seeds), reconnected with
capped, jittered back-off, and re-subscribed where held; then `on_reconnect` is called
with the logical channels held on them, so the owner catches up only those. A partition
whose slot moved (a MOVED to a publish, or the SUNSUBSCRIBE Redis sends when a slot moves
away) is mapped again alone. The other masters' partitions keep delivering meanwhile; with
`cluster-require-full-coverage no`, so do they while a master with no replica is down.
Publishes on a partition being mapped again fail at once; the catch-up repairs them.

`on_receivers` counts the processes subscribed to the partition, not to the channel:
never fewer, so the hub's solo rule (chat/delivery/hub.py: one receiver, itself) only
ever errs on the side of ringing.

This module holds the bus itself: the Bus protocol, the replies read from each subscriber,
and the supervision that recovers partitions. What it knows of each partition (its
master's link, held, subscribed, confirmed, stale) and the bookkeeping of a fault are in
chat/bus_cluster_map.py; each master's connections, in chat/bus_cluster_link.py; which
master owns which partition, in chat/bus_cluster_slots.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import hiredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from chat import bus_cluster_slots, bus_partitions, resp
from chat.bus import Handler, Receivers, Reconnected
from chat.bus_cluster_link import Link, open_link
from chat.bus_cluster_map import PartitionMap
from chat.bus_cluster_slots import Node
from chat.redis_url import RedisTopology
from chat.redisconn import node_url

log = logging.getLogger("peerchat.bus")
CONFIRM_TIMEOUT_S = 3.0  # a partition's SSUBSCRIBE confirmed within this, or its master is retried
HEALTH_S = 5.0  # ping each subscriber this often; two silent periods mean it is dead


class ClusterBus:
    def __init__(self, topology: RedisTopology, client: RedisCluster, partitions: int) -> None:
        self._topology = topology
        self._client = client
        self.partitions = bus_partitions.partition_names(partitions)
        self._map = PartitionMap(self.partitions)
        self._channels: set[str] = set()  # every logical channel held
        self._handler: Handler | None = None
        self._on_reconnect: Reconnected | None = None
        self._task: asyncio.Task[None] | None = None
        self._catching_up: set[asyncio.Task[None]] = set()
        self._closed = False
        self._connected = asyncio.Event()
        self._down_logged = False
        self.rings_published = 0  # rings this process published (metrics, bench)
        self.rings_heard = 0  # rings this process received (metrics, tests, bench)
        self.rings_for_others = 0  # ... of which for channels it does not hold

    # ------------------------------------------------------------------ the Bus protocol

    async def start(self, handler: Handler, on_reconnect: Reconnected) -> None:
        self._handler, self._on_reconnect = handler, on_reconnect
        self._task = asyncio.create_task(self._run(), name="redis-cluster-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5)

    async def close(self) -> None:
        self._closed = True
        for task in (*self._catching_up, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        links = list(self._map.links.values())
        for link in links:
            self._link_failed(link, quiet=True)
        for link in links:
            await link.publisher.close()

    @property
    def healthy(self) -> bool:
        """Every partition is on a live link (a master down leaves its partitions out)."""
        return not self._map.stale and not self._closed and bool(self._map.links)

    def masters(self) -> dict[str, list[int]]:
        """Which master ("host:port") holds which partitions now (tests, docs)."""
        return {f"{host}:{port}": sorted(link.partitions) for (host, port), link in self._map.links.items()}

    def subscribed_partitions(self) -> set[int]:
        """The partitions this process is subscribed to (confirmed) now (tests, bench)."""
        return set(self._map.confirmed)

    async def publish(self, channel: str, data: bytes) -> bool:
        partition = bus_partitions.partition_of(channel, len(self.partitions))
        link = self._map.owner.get(partition)
        if link is None:
            return False  # being mapped again: the catch-up that follows repairs it
        self.rings_published += 1
        return await link.publisher.publish(self.partitions[partition], bus_partitions.wrap(channel, data))

    def post(self, channel: str, data: bytes, on_receivers: Receivers | None = None) -> None:
        partition = bus_partitions.partition_of(channel, len(self.partitions))
        link = self._map.owner.get(partition)
        if link is not None:
            self.rings_published += 1
            link.publisher.post(self.partitions[partition], bus_partitions.wrap(channel, data), on_receivers)

    def confirmed(self, channel: str) -> bool:
        partition = bus_partitions.partition_of(channel, len(self.partitions))
        return partition in self._map.confirmed and channel in self._channels

    async def subscribe(self, channel: str) -> None:
        partition = bus_partitions.partition_of(channel, len(self.partitions))
        self._map.held.setdefault(partition, set()).add(channel)
        self._channels.add(channel)
        if partition in self._map.confirmed:
            return  # the partition is heard already: so is the channel, from now on
        link = self._map.owner.get(partition)
        if link is None:
            return  # recorded: subscribed when its master is reached, then caught up
        self._map.ssubscribe(link, partition)
        waiter = self._map.waiter(partition)
        try:
            # Until Redis confirms, a PUBLISH from elsewhere may not reach us: the caller
            # reads state after this, so nothing may fall in between.
            await asyncio.wait_for(asyncio.shield(waiter), CONFIRM_TIMEOUT_S)
        except TimeoutError:
            log.warning("redis cluster did not confirm a subscription within %.0f s", CONFIRM_TIMEOUT_S)

    async def unsubscribe(self, channel: str) -> None:
        partition = bus_partitions.partition_of(channel, len(self.partitions))
        held = self._map.held.get(partition)
        if held is None or channel not in held:
            return
        held.discard(channel)
        self._channels.discard(channel)
        if held:
            return
        self._map.release(partition)  # its last channel left: stop hearing the partition

    # ------------------------------------------------------------------ subscribing

    def _on_subscriber_reply(self, link: Link, reply: resp.Reply) -> None:
        if isinstance(reply, list) and len(reply) == 3:
            kind = reply[0]
            if kind == b"smessage":
                self.rings_heard += 1
                unwrapped = bus_partitions.unwrap(reply[2])
                if unwrapped is None or unwrapped[0] not in self._channels or self._handler is None:
                    self.rings_for_others += 1
                    return
                try:
                    self._handler(*unwrapped)
                except Exception:
                    log.exception("bus handler failed")
                return
            partition = self._map.index.get(reply[1].decode()) if isinstance(reply[1], bytes) else None
            if partition is None:
                return
            if kind == b"ssubscribe":
                self._map.confirm(link, partition)
                return
            if kind == b"sunsubscribe":
                self._map.sunsubscribed(link, partition)
                return
        if isinstance(reply, hiredis.ReplyError):
            log.warning("redis cluster refused a bus command: %s", str(reply).split(" ", 1)[0])
            moved = self._map.redirected(reply)
            if moved is not None:
                self._map.moved(moved)
            else:
                self._link_failed(link)
        # Anything else is a PONG or an AUTH's OK: heard, nothing to do.

    # ------------------------------------------------------------------ faults

    def _publish_refused(self, name: str, reply: resp.Reply) -> None:
        log.warning("redis cluster refused a bus publish: %s", str(reply).split(" ", 1)[0])
        partition = self._map.index.get(name)
        if partition is not None:
            self._map.moved(partition)

    def _link_failed(self, link: Link, *, quiet: bool = False) -> None:
        """A master's connection is lost, silent or refused: map its partitions again."""
        if link.dead:
            return
        if not quiet and not self._closed:
            log.warning("redis cluster bus lost %s:%d; mapping its partitions again", *link.node)
        self._map.lost(link)

    # ------------------------------------------------------------------ supervision

    async def _open(self, node: Node) -> Link:
        address = resp.parse_url(node_url(self._topology, *node))
        return await open_link(
            node, address, self._on_subscriber_reply, self._link_failed, self._publish_refused
        )

    async def _recover(self) -> set[int]:
        """Map the stale partitions onto live links (connecting new masters), SSUBSCRIBE
        the held ones, and wait for Redis to confirm them. Returns the partitions brought
        back; those whose master could not be reached stay stale."""
        stale = set(self._map.stale)
        nodes = bus_cluster_slots.candidates(self._client, self._map.links, self._topology)
        owners = await bus_cluster_slots.map_partitions(nodes, self._topology, self.partitions, stale)
        new_nodes = list({node for node in owners.values() if node not in self._map.links})
        opened = await asyncio.gather(*(self._open(node) for node in new_nodes), return_exceptions=True)
        for node, result in zip(new_nodes, opened, strict=True):
            if isinstance(result, Link):
                if self._closed:
                    self._link_failed(result, quiet=True)
                else:
                    self._map.links[node] = result
            elif not isinstance(result, Exception):
                raise result  # cancelled
            elif not self._down_logged:
                log.warning("redis cluster node %s:%d unreachable: %s", *node, type(result).__name__)
        back = self._map.assign(stale, owners)
        for link in await self._map.unconfirmed(back, CONFIRM_TIMEOUT_S):
            self._link_failed(link)
        return {p for p in back if p not in self._map.stale}

    async def _run(self) -> None:
        delay = 0.05
        pinged = time.monotonic()
        while not self._closed:
            self._map.trouble.clear()
            if self._map.stale:
                back: set[int] = set()
                try:
                    back = await self._recover()
                except (OSError, TimeoutError, RedisError) as exc:
                    if not self._down_logged:
                        log.warning("redis cluster bus unreachable: %s", type(exc).__name__)
                        self._down_logged = True
                if self._closed:
                    return
                self._caught_up(back)
                if self._map.links:
                    self._connected.set()
            now = time.monotonic()
            if now - pinged >= HEALTH_S:
                pinged = now
                self._check_health(now)
            if self._map.stale:
                if not self._down_logged:
                    log.warning("redis cluster bus: %d partition(s) without a master", len(self._map.stale))
                    self._down_logged = True
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
                continue
            if self._down_logged:
                log.warning("redis cluster bus: every partition has its master again")
                self._down_logged = False
            delay = 0.05
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._map.trouble.wait(), max(0.0, pinged + HEALTH_S - time.monotonic())
                )

    def _check_health(self, now: float) -> None:
        """Ping every subscriber; one silent for two periods is dead. (Each publisher drops
        a connection that leaves a publish unanswered by itself, chat/bus_publisher.py.)"""
        for link in list(self._map.links.values()):
            if now - link.subscriber.last_heard > 2 * HEALTH_S:
                log.warning("redis cluster bus silent for %.0f s", 2 * HEALTH_S)
                self._link_failed(link)
            else:
                link.subscriber.send(resp.command("PING"))

    def _caught_up(self, back: set[int]) -> None:
        """Partitions are back: the owner catches up the channels held on them (rings on
        them may have been lost meanwhile)."""
        channels = frozenset(c for p in back for c in self._map.held.get(p, ()))
        if not channels or self._on_reconnect is None:
            return
        log.warning("redis cluster bus: %d partition(s) back; catching up from PostgreSQL", len(back))
        task = asyncio.create_task(self._reconnected(channels), name="bus-reconnected")
        self._catching_up.add(task)
        task.add_done_callback(self._catching_up.discard)

    async def _reconnected(self, channels: frozenset[str]) -> None:
        if self._on_reconnect is not None:
            try:
                await self._on_reconnect(channels)
            except Exception:
                log.exception("catching up after a bus reconnect failed")
