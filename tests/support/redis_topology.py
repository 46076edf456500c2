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
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

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


class _Launcher(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


_L = TypeVar("_L", bound=_Launcher)


@contextmanager
def _running(launcher: _L) -> Iterator[_L]:
    ensure_redis7()
    try:
        launcher.start()
        yield launcher
    finally:
        launcher.stop()


def sentinel_set(
    base: Path, *, down_after_ms: int = 2000, failover_timeout_ms: int = 10000
) -> AbstractContextManager[SentinelSet]:
    return _running(
        SentinelSet(base / "sentinel", down_after_ms=down_after_ms, failover_timeout_ms=failover_timeout_ms)
    )


def redis_cluster_set(
    base: Path, *, masters: int = 3, node_timeout_ms: int = 1500
) -> AbstractContextManager[RedisClusterSet]:
    return _running(RedisClusterSet(base / "redis-cluster", masters=masters, node_timeout_ms=node_timeout_ms))


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
