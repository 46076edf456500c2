"""`REDIS_URL` in its three forms (PRODUCT.md §11), and the redis-py client each one needs.

- `redis://`, `rediss://` (TLS) or `unix://`: one Redis, read by redis-py itself.
- `redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?options]`
  (`rediss+sentinel://` for TLS): a Sentinel set. Every connection asks the sentinels
  where the master is first, so a promotion is followed; the password is the master's
  (Sentinel's own, if it has one, is `sentinel_password` in the query).
- `redis+cluster://[[user]:password@]host:port[,host:port...]` (`rediss+cluster://`): a
  Redis Cluster; the hosts are seeds, the rest is discovered.

`parse()` is pure and runs at start-up (chat/config.py), so a malformed URL stops the
process with a message naming what is wrong. The query options redis-py honours for TLS
(`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`, `ssl_check_hostname`)
apply to the Sentinel and Cluster forms as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisClusterException

from chat import resp

Kind = Literal["single", "sentinel", "cluster"]
# Whatever the form, the code that reads and writes keys takes one of these.
RedisClient = redis.Redis | RedisCluster

_TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
MAX_CONNECTIONS = 100  # per process (per node, on a cluster)
TIMEOUT_S = 2.0  # connect, read, and wait for a pooled connection


class RedisUrlError(ValueError):
    """REDIS_URL cannot be used; the message says why (never the password)."""


@dataclass(frozen=True, slots=True)
class RedisTopology:
    kind: Kind
    url: str  # as given (the single form is handed to redis-py as is)
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""  # Sentinel's name for the master set
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_options: dict[str, str] = field(default_factory=dict)
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def parse(url: str) -> RedisTopology:
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise RedisUrlError(
            "REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
        )
    if scheme in ("redis", "rediss", "unix"):
        return RedisTopology("single", url, tls=scheme == "rediss")
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        return _several(url, "sentinel", tls=scheme.startswith("rediss"))
    if scheme in ("redis+cluster", "rediss+cluster"):
        return _several(url, "cluster", tls=scheme.startswith("rediss"))
    raise RedisUrlError(
        f"REDIS_URL scheme {scheme!r} is not one of redis, rediss, unix, redis+sentinel, "
        "rediss+sentinel, redis+cluster, rediss+cluster"
    )


def _several(url: str, kind: Kind, *, tls: bool) -> RedisTopology:
    parts = urlsplit(url)
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
        if not colon:  # redis://secret@host is how redis-py reads a bare password too
            username, password = None, unquote(user) or None
    hosts = tuple(_host(h, kind) for h in hostlist.split(","))
    path = [p for p in parts.path.split("/") if p]
    service, db = "", 0
    if kind == "sentinel":
        if not path or len(path) > 2:
            raise RedisUrlError(
                "a Sentinel REDIS_URL ends with /<master name>, e.g. redis+sentinel://h:26379,h2:26379/mymaster"
            )
        service = unquote(path[0])
        if len(path) == 2:
            db = _db(path[1])
    elif path and (len(path) > 1 or _db(path[0]) != 0):
        raise RedisUrlError("a Redis Cluster has only database 0: no /<db> in a redis+cluster URL")
    query = dict(parse_qsl(parts.query))
    if "db" in query:
        if kind == "cluster" and _db(query["db"]) != 0:
            raise RedisUrlError("a Redis Cluster has only database 0: no db= in a redis+cluster URL")
        db = _db(query.pop("db"))
    known = (*_TLS_OPTIONS, *(_SENTINEL_OPTIONS if kind == "sentinel" else ()))
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise RedisUrlError(
            f"REDIS_URL option(s) not understood: {', '.join(unknown)} (known: {', '.join(known)})"
        )
    tls_options = {k: v for k, v in query.items() if k in _TLS_OPTIONS}
    if tls_options and not tls:
        raise RedisUrlError("ssl_* options need the TLS scheme (rediss+sentinel:// or rediss+cluster://)")
    return RedisTopology(
        kind,
        url,
        hosts=hosts,
        service=service,
        db=db,
        username=username,
        password=password,
        tls=tls,
        tls_options=tls_options,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
    )


def _host(text: str, kind: Kind) -> tuple[str, int]:
    default = 26379 if kind == "sentinel" else 6379
    text = text.strip()
    if not text:
        raise RedisUrlError("REDIS_URL has an empty host in its host list")
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"REDIS_URL port {port_text!r} is not a port number")
    return host, int(port_text)


def _db(text: str) -> int:
    if not text.isdigit():
        raise RedisUrlError(f"REDIS_URL database {text!r} is not a whole number")
    return int(text)


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
