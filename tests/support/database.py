"""One-off SQL against a test's database, for checking what was stored (or setting up what
the service would find): each call opens its own connection and closes it, so a test needs
no pool and holds nothing open while the service runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg


@asynccontextmanager
async def connected(database_url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with connected(database_url) as conn:
        return await conn.fetch(sql, *args)


async def fetchrow(database_url: str, sql: str, *args: Any) -> asyncpg.Record | None:
    async with connected(database_url) as conn:
        return await conn.fetchrow(sql, *args)


async def fetchval(database_url: str, sql: str, *args: Any) -> Any:
    async with connected(database_url) as conn:
        return await conn.fetchval(sql, *args)


async def execute(database_url: str, sql: str, *args: Any) -> str:
    """One statement (with `args`) or, without them, a script of several."""
    async with connected(database_url) as conn:
        return await conn.execute(sql, *args)


async def stored_row(database_url: str, sql: str, *args: Any) -> asyncpg.Record:
    """The row `sql` selects, which the test expects to be there: none fails the test."""
    row = await fetchrow(database_url, sql, *args)
    assert row is not None, f"no row for {sql!r}"
    return row
