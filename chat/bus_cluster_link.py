"""One master of the cluster bus: its subscriber connection (whose replies are read by the
bus, chat/bus_cluster.py) and its publisher (chat/bus_publisher.py, with SPUBLISH), and
what the bus knows of the partitions it owns."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable

from chat import resp
from chat.bus_cluster_slots import Node
from chat.bus_publisher import CONNECT_TIMEOUT_S, Fixed, Publisher


class Link:
    """One master: a subscriber connection and a publisher, for the partitions it owns."""

    __slots__ = ("dead", "leaving", "node", "partitions", "publisher", "subscribed", "subscriber")

    def __init__(self, node: Node, subscriber: resp.Wire, publisher: Publisher) -> None:
        self.node = node
        self.subscriber = subscriber
        self.publisher = publisher
        self.partitions: set[int] = set()  # owned, as the slot map said
        self.subscribed: set[int] = set()  # SSUBSCRIBE sent, no SUNSUBSCRIBE since
        self.leaving: Counter[int] = Counter()  # SUNSUBSCRIBEs sent, not yet answered
        self.dead = False


async def open_link(
    node: Node,
    address: resp.Address,
    on_reply: Callable[[Link, resp.Reply], None],
    on_failed: Callable[[Link], None],
    on_refused: Callable[[str, resp.Reply], None],
) -> Link:
    """Connect to `node`'s subscriber and start its publisher. Each subscriber reply goes
    to `on_reply`; a lost subscriber or a publisher that cannot reconnect to `on_failed`;
    a refused publish (a MOVED, say) to `on_refused`."""
    box: list[Link] = []

    def reply(message: resp.Reply) -> None:
        if box:
            on_reply(box[0], message)

    subscriber = await resp.connect(address, reply, CONNECT_TIMEOUT_S)
    publisher = Publisher(
        Fixed(address),
        lambda: on_failed(link),
        verb="SPUBLISH",
        on_refused=on_refused,
    )
    link = Link(node, subscriber, publisher)
    box.append(link)
    subscriber.on_lost = functools.partial(on_failed, link)
    publisher.start()
    return link
