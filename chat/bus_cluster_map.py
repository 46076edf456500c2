"""What the cluster bus (chat/bus_cluster.py) knows of its partitions: which master's link
serves each one now, which wait to be mapped (again), which are held (a channel on them is
wanted here), SSUBSCRIBEd and confirmed by Redis, and who waits for a confirmation. The bus
reads the wire and runs the recovery; the bookkeeping of a fault (a partition whose slot
moved, a master's link lost) is here, in one place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from chat import bus_partitions, resp
from chat.bus_cluster_link import Link
from chat.bus_cluster_slots import Node

log = logging.getLogger("peerchat.bus")


class PartitionMap:
    def __init__(self, names: Sequence[str]) -> None:
        self.names = names  # partition → its name (the sharded channel)
        self.index = {name: i for i, name in enumerate(names)}
        self._slots = {bus_partitions.slot_of(name): i for i, name in enumerate(names)}
        self.links: dict[Node, Link] = {}
        self.owner: dict[int, Link] = {}  # partition → the link of its master
        self.stale: set[int] = set(range(len(names)))  # partitions to map (again)
        self.held: dict[int, set[str]] = {}  # partition → the logical channels held on it
        self.confirmed: set[int] = set()  # partitions whose SSUBSCRIBE is in effect
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.trouble = asyncio.Event()  # set on a fault: the recovery looks at once

    def ssubscribe(self, link: Link, partition: int) -> None:
        if partition not in link.subscribed:
            link.subscribed.add(partition)
            link.subscriber.send(resp.command("SSUBSCRIBE", self.names[partition]))

    def waiter(self, partition: int) -> asyncio.Future[None]:
        """Done once Redis confirms the partition's SSUBSCRIBE."""
        waiter = self.waiters.get(partition)
        if waiter is None or waiter.done():
            waiter = self.waiters[partition] = asyncio.get_running_loop().create_future()
        return waiter

    def confirm(self, link: Link, partition: int) -> None:
        """Redis confirmed an SSUBSCRIBE on `link`."""
        if link.leaving[partition] > 0 or partition not in link.subscribed:
            return  # an SUNSUBSCRIBE already follows it
        if self.owner.get(partition) is not link:
            return
        self.confirmed.add(partition)
        waiter = self.waiters.pop(partition, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def release(self, partition: int) -> None:
        """No channel is held on `partition` any more: SUNSUBSCRIBE it (the reply to that
        is ours, `leaving` counts it)."""
        del self.held[partition]
        self.confirmed.discard(partition)
        link = self.owner.get(partition)
        if link is not None and partition in link.subscribed:
            link.subscribed.discard(partition)
            link.leaving[partition] += 1
            link.subscriber.send(resp.command("SUNSUBSCRIBE", self.names[partition]))

    def redirected(self, reply: resp.Reply) -> int | None:
        """The partition a `MOVED <slot> <node>` (or ASK) error names, if it is one of ours."""
        words = str(reply).split()
        if len(words) >= 2 and words[0] in ("MOVED", "ASK") and words[1].isdigit():
            return self._slots.get(int(words[1]))
        return None

    async def unconfirmed(self, back: set[int], timeout: float) -> list[Link]:
        """Wait up to `timeout` for Redis to confirm the held ones of `back`; returns the
        links of those it did not (their masters are to be tried again)."""
        waiting = [self.waiter(p) for p in back if p in self.held and p not in self.confirmed]
        if not waiting:
            return []
        try:
            await asyncio.wait_for(asyncio.gather(*(asyncio.shield(w) for w in waiting)), timeout)
            return []
        except TimeoutError:
            late = [self.owner.get(p) for p in back if p in self.held and p not in self.confirmed]
            return list({id(link): link for link in late if link is not None}.values())

    def assign(self, stale: set[int], owners: dict[int, Node]) -> set[int]:
        """Put each of `stale` on its master's live link (as `owners`, the slot map, says),
        SSUBSCRIBE the held ones; returns those placed. Those whose master has no live
        link stay stale."""
        back: set[int] = set()
        for partition in stale:
            link = self.links.get(owners[partition]) if partition in owners else None
            if link is None or link.dead or partition not in self.stale:
                continue
            self.stale.discard(partition)
            self.owner[partition] = link
            link.partitions.add(partition)
            if partition in self.held:
                self.ssubscribe(link, partition)
            back.add(partition)
        return back

    def sunsubscribed(self, link: Link, partition: int) -> None:
        """Redis says `link` no longer hears `partition`: ours (unsubscribed on demand), or,
        when we did not ask, because the partition's slot moved away."""
        if link.leaving[partition] > 0:
            link.leaving[partition] -= 1
            if not link.leaving[partition]:
                del link.leaving[partition]
            return
        log.warning("redis cluster moved a bus partition; reading the slot map again")
        self.moved(partition)

    def moved(self, partition: int) -> None:
        """Its slot lives elsewhere now: map it again (its link carries on with the rest)."""
        link = self.owner.pop(partition, None)
        if link is not None:
            # Not SUNSUBSCRIBEd: its node no longer serves the slot, and has dropped (or
            # will drop) our subscription itself.
            link.partitions.discard(partition)
            link.subscribed.discard(partition)
        self.confirmed.discard(partition)
        self.stale.add(partition)
        self.trouble.set()

    def lost(self, link: Link) -> None:
        """A master's connection is lost, silent or refused: its partitions are mapped
        again, its connections closed."""
        link.dead = True
        if self.links.get(link.node) is link:
            del self.links[link.node]
        for partition in link.partitions:
            if self.owner.get(partition) is link:
                del self.owner[partition]
                self.confirmed.discard(partition)
                self.stale.add(partition)
        link.subscriber.on_lost = None
        link.subscriber.abort()
        link.publisher.abort()
        self.trouble.set()
