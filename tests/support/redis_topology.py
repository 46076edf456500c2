"""Redis topologies for tests (PRODUCT.md §11), from Debian's Redis 7: a Sentinel set (a
master, a replica, three sentinels) and a cluster of three masters with a replica each.
Each yields its launcher (chat/devredis/), whose `url` is the REDIS_URL to give the
service (`redis+sentinel://h:p,h:p,h:p/mymaster`, `redis+cluster://h:p,...`) and which can
kill a master, wait for the promotion, or (the cluster) move a slot:

    with sentinel_set(tmp_path) as s:
        old = s.kill_master()
        new = s.wait_for_promotion(old)

    async def test_x(redis_cluster: RedisClusterSet) -> None:
        new = redis_cluster.wait_for_promotion(redis_cluster.kill_master(slot=0))
        redis_cluster.migrate_slot(5, target=...)

The helpers block (they poll with short sleeps); from async code call them through
`asyncio.to_thread`. Debian's packages are installed by `make test`
(tests/faults/install-redis.sh) or else here, once, on first use: never a skip."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chat.devredis import MASTER_NAME, RedisClusterSet, RedisNode, SentinelSet

__all__ = [
    "MASTER_NAME",
    "RedisClusterSet",
    "RedisNode",
    "SentinelSet",
    "ensure_redis7",
    "redis_cluster",
    "redis_cluster_set",
    "redis_sentinel",
    "sentinel_set",
]

_INSTALL = Path(__file__).resolve().parent.parent / "faults" / "install-redis.sh"
_installed = threading.Lock()
_done = False


def ensure_redis7() -> None:
    """Debian's redis-server/redis-sentinel/redis-cli 7, installed if missing."""
    global _done
    with _installed:
        if not _done:
            subprocess.run(["bash", str(_INSTALL)], check=True)
            _done = True


@contextmanager
def sentinel_set(
    base: Path, *, down_after_ms: int = 2000, failover_timeout_ms: int = 10000
) -> Iterator[SentinelSet]:
    ensure_redis7()
    s = SentinelSet(base / "sentinel", down_after_ms=down_after_ms, failover_timeout_ms=failover_timeout_ms)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@contextmanager
def redis_cluster_set(
    base: Path, *, masters: int = 3, node_timeout_ms: int = 1500
) -> Iterator[RedisClusterSet]:
    ensure_redis7()
    c = RedisClusterSet(base / "redis-cluster", masters=masters, node_timeout_ms=node_timeout_ms)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[SentinelSet]:
    """A fresh Sentinel set for one test."""
    with sentinel_set(tmp_path) as s:
        yield s


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterSet]:
    """A fresh 3-master cluster (a replica each) for one test."""
    with redis_cluster_set(tmp_path) as c:
        yield c
