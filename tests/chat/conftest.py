"""Fixtures for the repository tests: a pool on the test's own fresh database; a Sentinel
set and a 3-master cluster shared by the tests that only use them (tests that kill or move
nodes start their own)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TypeAlias

import asyncpg
import pytest

from chat.store.db import open_pool
from tests.support.redis_topology import RedisClusterSet, SentinelSet, redis_cluster_set, sentinel_set

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Pool]:
    pool = await open_pool(database_url, min_size=2, max_size=30)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def shared_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    with sentinel_set(tmp_path_factory.mktemp("shared-sentinel")) as s:
        yield s


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    with redis_cluster_set(tmp_path_factory.mktemp("shared-cluster")) as c:
        yield c
