"""The redis-py client for each form of `REDIS_URL` (read by chat/redis_url.py): one Redis,
a Sentinel set (every connection asks the sentinels where the master is first, so a
promotion is followed) or a Redis Cluster, each with a bounded pool that waits for a free
connection rather than failing; and, for the bus, a single node's URL and the Sentinel
set's master of the moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisClusterException

from chat import resp
from chat.redis_url import Kind, RedisTopology, RedisUrlError, parse

# What callers imported from here before the URL's reading moved to chat/redis_url.py.
__all__ = [
    "MAX_CONNECTIONS",
    "TIMEOUT_S",
    "ClusterUnavailable",
    "Kind",
    "MasterResolver",
    "RedisClient",
    "RedisTopology",
    "RedisUrlError",
    "client",
    "node_url",
    "parse",
    "sentinel",
]

# Whatever the form, the code that reads and writes keys takes one of these.
RedisClient = redis.Redis | RedisCluster

MAX_CONNECTIONS = 100  # per process (per node, on a cluster)
TIMEOUT_S = 2.0  # connect, read, and wait for a pooled connection


def _tls_kwargs(topology: RedisTopology) -> dict[str, object]:
    if not topology.tls:
        return {}
    kwargs: dict[str, object] = {"ssl": True}
    for name, value in topology.tls_options.items():
        kwargs[name] = value.lower() in ("1", "true", "yes") if name == "ssl_check_hostname" else value
    return kwargs


class ClusterUnavailable(RedisConnectionError):
    """A cluster with slots nobody serves, or no node reachable at all. redis-py raises
    RedisClusterException for these, which is not a RedisError; every Redis user here
    handles "Redis is down" as RedisError or OSError, so the cluster client raises this
    (a redis ConnectionError) instead."""


class _Cluster(RedisCluster):
    """Bounded like the other topologies' pools, and waiting like them: redis-py's cluster
    node pool raises MaxConnectionsError at once when a node's MAX_CONNECTIONS are busy (a
    burst of socket caps and leases at a reconnect storm failed by the hundred). Here at most
    MAX_CONNECTIONS commands or pipelines are in flight, so no node is ever asked for more
    connections than that, and one past it waits up to TIMEOUT_S for its turn."""

    _turns: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if self._turns is None:
            self._turns = asyncio.Semaphore(MAX_CONNECTIONS)
        turns = self._turns
        if turns.locked():
            try:
                await asyncio.wait_for(turns.acquire(), TIMEOUT_S)
            except TimeoutError:
                raise MaxConnectionsError("no free Redis connection within the timeout") from None
        else:
            await turns.acquire()
        try:
            yield
        finally:
            turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            try:
                return await super().execute_command(*args, **kwargs)
            except RedisClusterException as exc:
                raise ClusterUnavailable(str(exc)) from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        client = self.cluster_client
        assert isinstance(client, _Cluster)
        async with client.turn():  # one turn: a pipeline holds at most one connection per node
            try:
                return await super().execute(raise_on_error, allow_redirections)
            except RedisClusterException as exc:
                raise ClusterUnavailable(str(exc)) from exc


class _SentinelMaster(redis.Redis):
    """The master's client, which closes the sentinels' connections with its own."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            await self.sentinels.aclose()


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (asks where the master is before each new connection) that, like the
    single-node pool, waits up to TIMEOUT_S for a free connection instead of failing."""


def sentinel(topology: RedisTopology) -> Sentinel:
    """The sentinels of a Sentinel topology (the bus asks them where the master is)."""
    sentinel_kwargs: dict[str, object] = {
        "socket_timeout": TIMEOUT_S,
        "socket_connect_timeout": TIMEOUT_S,
        **_tls_kwargs(topology),
    }
    if topology.sentinel_password is not None:
        sentinel_kwargs["password"] = topology.sentinel_password
        sentinel_kwargs["username"] = topology.sentinel_username
    return Sentinel(list(topology.hosts), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]


def client(topology: RedisTopology) -> RedisClient:
    """The client for keys and scripts (presence, caps, rate limits, health)."""
    if topology.kind == "single":
        # A blocking pool: a burst (thousands of sockets closing at a drain, each releasing
        # its lease) waits up to 2 s for one of 100 connections instead of failing at once
        # with MaxConnectionsError, which left leases behind and let sockets past the cap.
        return redis.Redis.from_pool(
            redis.BlockingConnectionPool.from_url(
                topology.url,
                max_connections=MAX_CONNECTIONS,
                timeout=TIMEOUT_S,
                socket_timeout=TIMEOUT_S,
                socket_connect_timeout=TIMEOUT_S,
            )
        )
    common: dict[str, object] = {
        "username": topology.username,
        "password": topology.password,
        "socket_timeout": TIMEOUT_S,
        "socket_connect_timeout": TIMEOUT_S,
        **_tls_kwargs(topology),
    }
    if topology.kind == "sentinel":
        sentinels = sentinel(topology)
        master: _SentinelMaster = sentinels.master_for(
            topology.service,
            redis_class=_SentinelMaster,
            connection_pool_class=_BlockingSentinelPool,
            db=topology.db,
            max_connections=MAX_CONNECTIONS,
            timeout=TIMEOUT_S,
            **common,
        )
        master.sentinels = sentinels
        return master
    return _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in topology.hosts],
        max_connections=MAX_CONNECTIONS,
        **common,  # type: ignore[arg-type]
    )


def node_url(topology: RedisTopology, host: str, port: int) -> str:
    """A single-node URL for one server of a Sentinel or Cluster topology, with its
    credentials, db and TLS options (the bus reads it with chat/resp.py)."""
    scheme = "rediss" if topology.tls else "redis"
    auth = ""
    if topology.password is not None:
        auth = f"{quote(topology.username or '', safe='')}:{quote(topology.password, safe='')}@"
    elif topology.username is not None:
        auth = f"{quote(topology.username, safe='')}@"
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    query = urlencode(topology.tls_options)
    return f"{scheme}://{auth}{netloc}/{topology.db}" + (f"?{query}" if query else "")


class MasterResolver:
    """For the bus on a Sentinel set: the master's address as the sentinels name it now,
    asked before every (re)connect (MasterNotFoundError, a RedisError, while they have
    none: the bus retries). The bus closes it with itself.

    The node named is asked its ROLE too: a sentinel that has not heard of a promotion yet
    can still name the old master, alive and now a replica. A PUBLISH there fails nothing,
    yet reaches only that replica's subscribers, and Sentinel will not kill our clients on
    it again: the bus would stay there, its rings lost, with nothing to make it move."""

    def __init__(self, topology: RedisTopology) -> None:
        self._topology = topology
        self._sentinels = sentinel(topology)

    async def __call__(self) -> resp.Address:
        host, port = await self._sentinels.discover_master(self._topology.service)
        address = resp.parse_url(node_url(self._topology, str(host), int(port)))
        role = await resp.ask(address, "ROLE", timeout=TIMEOUT_S)
        if not (isinstance(role, list) and role and role[0] == b"master"):
            raise RedisConnectionError(
                f"the node Sentinel named for {self._topology.service!r} is not a master"
            )
        return address

    async def aclose(self) -> None:
        await self._sentinels.aclose()
