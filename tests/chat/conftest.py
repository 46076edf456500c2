"""Fixtures for the repository tests: a pool on the test's own fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import asyncpg
import pytest

from chat.store.db import open_pool

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Pool]:
    pool = await open_pool(database_url, min_size=2, max_size=30)
    try:
        yield pool
    finally:
        await pool.close()
