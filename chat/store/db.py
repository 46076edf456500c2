"""The PostgreSQL pool and the small helpers every repository module shares."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Generic, Self, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A pool or a connection inside a transaction: repository functions take either.
Db: TypeAlias = (
    "asyncpg.Pool[asyncpg.Record] | asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
)
Row: TypeAlias = asyncpg.Record


# What PostgreSQL being unreachable looks like from asyncpg: nothing was stored, retry.
# With several hosts in DATABASE_URL (target_session_attrs=read-write), a failover in
# progress looks like every host refusing (OSError), or every host answering read-only
# (TargetServerAttributeNotMatched), or a connection that reached a node as it turned
# read-only (ReadOnlySQLTransactionError): in each, nothing was written.
STORAGE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    return None


async def open_pool(
    url: str, *, min_size: int = 2, max_size: int = 20, behind_pooler: bool = False
) -> asyncpg.Pool[asyncpg.Record]:
    """The pool. `url` may list several hosts (`postgresql://h1,h2/db?target_session_attrs=
    read-write`): asyncpg tries them in order for every new connection and keeps the first
    that is writable, so after a failover the connections that die with the old primary are
    replaced by ones to the new primary, with no restart.

    `behind_pooler`: `url` is a PgBouncer in transaction-pooling mode (Debian's 1.18 has no
    `max_prepared_statements`), where a named prepared statement made in one transaction
    may be missing in the next: turn asyncpg's statement cache off. Its unnamed statements
    stay safe, as asyncpg sends Parse/Describe with a Flush and Bind/Execute with the Sync,
    so one statement never spans two server sessions."""
    pool = await asyncpg.create_pool(
        url,
        statement_cache_size=0 if behind_pooler else 100,
        min_size=min_size,
        max_size=max_size,
        command_timeout=10,
        # Fail fast while PostgreSQL is down: the caller answers `unavailable` and the
        # client retries, rather than a send hanging for the default 60 s.
        timeout=3,
        max_inactive_connection_lifetime=60,
        # asyncpg's default reset sends RESET ALL / UNLISTEN / advisory unlock on every
        # release: a second round trip per pooled query. We keep no session state on pooled
        # connections (the matchmaker's advisory lock has its own connection), and an open
        # transaction is still rolled back by asyncpg before this runs.
        reset=_keep_session,
    )
    assert pool is not None
    return pool


def iso(ts: datetime) -> str:
    """ISO 8601 UTC with a Z, as the protocol promises."""
    global _last_iso
    last_ts, last_text = _last_iso
    if ts == last_ts:  # a batch's messages share one stamp (migration 0009)
        return last_text
    text = ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _last_iso = (ts, text)
    return text


_last_iso: tuple[datetime | None, str] = (None, "")


class FromRow:
    """Mix into a frozen dataclass whose field names are its table's column names: `of(row)`
    builds one from a row, and `columns()` is the SELECT list, so the two cannot drift."""

    @classmethod
    def of(cls, row: Row) -> Self:
        # By position, in field order (half the cost of keywords): a matching leader turns
        # every specialist and request into one of these on every cycle.
        return cls(*[row[name] for name in cls._names()])

    @classmethod
    def columns(cls) -> str:
        return ", ".join(cls._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        names = _FIELD_NAMES.get(cls)
        if names is None:  # dataclasses.fields() on every row was a third of `of`
            names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        return names


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


_T = TypeVar("_T", bound=FromRow)


class Reused(Generic[_T]):
    """Rows as `cls` instances, the very instance of last time for a row equal to last time's
    (same `id`): a matching leader reads every specialist and request on every cycle, and
    comparing a row costs a fraction of building one (docs/performance.md, round 9)."""

    def __init__(self, cls: type[_T]) -> None:
        self._cls = cls
        self._last: dict[object, tuple[Row, _T]] = {}

    def of(self, rows: list[Row]) -> list[_T]:
        last = self._last
        kept: dict[object, tuple[Row, _T]] = {}
        out: list[_T] = []
        for row in rows:
            key = row["id"]
            seen = last.get(key)
            item = seen[1] if seen is not None and seen[0] == row else self._cls.of(row)
            kept[key] = (row, item)
            out.append(item)
        self._last = kept
        return out
