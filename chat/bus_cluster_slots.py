"""Where the cluster bus's partitions live: which master owns each one, from `CLUSTER
SLOTS` asked of the nodes the keys' client knows, then the bus's masters, then the URL's
seeds (chat/bus_cluster.py maps partitions again with it whenever they go stale)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from redis.asyncio.cluster import RedisCluster

from chat import bus_partitions, resp
from chat.bus_publisher import CONNECT_TIMEOUT_S
from chat.redis_url import RedisTopology
from chat.redisconn import node_url

Node = tuple[str, int]


def candidates(client: RedisCluster, masters: Iterable[Node], topology: RedisTopology) -> list[Node]:
    """Nodes to ask for the slot map: those the keys' client knows of (it follows the
    cluster as it changes), the masters the bus is on, then the URL's seeds."""
    known = [(n.host, int(n.port)) for n in client.nodes_manager.nodes_cache.values()]
    random.shuffle(known)
    return list(dict.fromkeys([*known, *masters, *topology.hosts]))


async def map_partitions(
    nodes: list[Node], topology: RedisTopology, names: tuple[str, ...], partitions: set[int]
) -> dict[int, Node]:
    """Which master owns each of `partitions` (indexes into `names`) now, from CLUSTER
    SLOTS as the first of `nodes` that answers it with all of them covered says (else the
    answer covering most). Raises OSError when no node answers."""
    best: dict[int, Node] | None = None
    for host, port in nodes:
        try:
            reply = await resp.ask(
                resp.parse_url(node_url(topology, host, port)),
                "CLUSTER",
                "SLOTS",
                timeout=CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError):
            continue
        owners = _owners(reply, host)
        found: dict[int, Node] = {}
        for partition in partitions:
            owner = owners(bus_partitions.slot_of(names[partition]))
            if owner is not None:
                found[partition] = owner
        if len(found) == len(partitions):
            return found
        if best is None or len(found) > len(best):
            best = found
    if best is None:
        raise OSError("no redis cluster node answered CLUSTER SLOTS")
    return best


def _owners(reply: resp.Reply, asked: str) -> Callable[[int], Node | None]:
    """slot → its master (host, port), from a CLUSTER SLOTS reply (None: not covered)."""
    ranges: list[tuple[int, int, Node]] = []
    if isinstance(reply, list):
        for entry in reply:
            if isinstance(entry, list) and len(entry) >= 3 and isinstance(entry[2], list):
                host = entry[2][0].decode() if isinstance(entry[2][0], bytes) else ""
                ranges.append((int(entry[0]), int(entry[1]), (host or asked, int(entry[2][1]))))

    def owner(slot: int) -> Node | None:
        return next((node for low, high, node in ranges if low <= slot <= high), None)

    return owner
