"""Session-wide real servers, and fixtures that hand each test its own database and,
where it needs one, its own `peerchat serve` process on a real port."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as sync_redis
import redis.asyncio as redis

from chat.devservers import PostgresServer, RedisServer
from tests.support.server_dirs import ServerDirs
from tests.support.servers import (
    LiveService,
    Servers,
    fresh_database,
    make_template,
    service_env,
    stop_quickly,
)

# `redis_sentinel` and `redis_cluster`: Debian's Redis 7 in the topologies of PRODUCT.md §11.
pytest_plugins = ["tests.support.redis_topology"]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def server_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerDirs]:
    """Where the session's PostgreSQL data goes: out of pytest's temp root when we are
    root (tests/support/server_dirs.py says why), removed at the end."""
    dirs = ServerDirs(tmp_path_factory)
    try:
        yield dirs
    finally:
        dirs.remove()


@pytest.fixture(scope="session")
def servers(server_dirs: ServerDirs) -> Iterator[Servers]:
    base = server_dirs.make("servers")
    pg = PostgresServer(base / "pg", durable=False)
    rs = RedisServer()
    pg.start()
    rs.start()
    s = Servers(pg, rs)
    asyncio.run(make_template(s))
    try:
        yield s
    finally:
        pg.stop()
        rs.stop()


@pytest.fixture
async def database_url(servers: Servers) -> str:
    return await fresh_database(servers)


@pytest.fixture
async def redis_client(servers: Servers) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def service_command() -> str:
    """`serve`, as in production. The browser tests override it with `dev`: they sign in
    through `/login` and `/dev/token`, which `peerchat serve` never serves."""
    return "serve"


@pytest.fixture
def service_factory(
    servers: Servers, database_url: str, tmp_path: Path, service_command: str
) -> Iterator[type[object]]:
    """Start one or more `peerchat serve` processes on this test's database, with an empty
    Redis: presence, caps and rate limits left by an earlier test's processes (the
    session's Redis is shared, and keys outlive their process until their TTL) must not
    count here, whichever tests ran before in this worker."""
    flush = sync_redis.Redis.from_url(servers.redis.url)
    try:
        flush.flushall()
    finally:
        flush.close()
    started: list[LiveService] = []

    def start(**env: str) -> LiveService:
        svc = LiveService(
            env=service_env(database_url, servers.redis.url, **env),
            log_path=tmp_path / f"service-{len(started)}.log",
            command=service_command,
        )
        started.append(svc)
        svc.start()
        return svc

    yield start  # type: ignore[misc]
    stop_quickly(started)


@pytest.fixture
async def live(service_factory: object, redis_client: redis.Redis) -> LiveService:
    """One running service with a fresh database and an empty Redis."""
    return service_factory()  # type: ignore[operator, no-any-return]


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PEERCHAT_TEST", "1")
    ARTIFACTS.mkdir(exist_ok=True)
