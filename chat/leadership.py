"""Matching leadership: a PostgreSQL session advisory lock on a connection of its own.

The connection goes to PostgreSQL itself (`Settings.session_database_url`): behind a
transaction pooler a session lock would stay with whichever server session ran it. A
process that dies drops the connection, the lock frees, and another process takes it at
its next try (every `ELECTION_EVERY_S`).

A leader that loses PostgreSQL while its process lives (a partition, a hung host) would
keep the lock as long as PostgreSQL keeps its session: hours, until TCP keepalives give
up. So the leader says something on the lock connection every `_BEAT_S`, and PostgreSQL
ends a lock session silent for `_LEASE_S` (idle_session_timeout, PostgreSQL 14+): the lock
frees and another process leads within `_LEASE_S + ELECTION_EVERY_S`, inside the 10 s of
PRODUCT.md §11. A beat unanswered within `_BEAT_TIMEOUT_S` raises and the caller resigns;
if the old leader was in the middle of a cycle, it resigns when that cycle's query gives
up (the pool's 10 s command timeout). Cut off, it could not write meanwhile, and two
leaders at once would still offer nothing twice: every offer is a compare-and-set.
"""

from __future__ import annotations

import contextlib
import logging
import time

import asyncpg

log = logging.getLogger("peerchat.matchmaker")

LOCK_KEY = 0x6D61746368  # "match"
ELECTION_EVERY_S = 2.0
_CLOSE_S = 2.0
_BEAT_S = 1.0
_BEAT_TIMEOUT_S = 2.0
_LEASE_S = 5.0


class Leadership:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._last_beat = 0.0
        self._beating = False
        self._told = False
        # A process that does not lead keeps its lock connection between tries.
        self._candidate: asyncpg.Connection[asyncpg.Record] | None = None
        self.leading = False

    async def hold(self) -> bool | None:
        """Keep or try to take the lead: True if we lead (and always have since the last
        call), None if we have just taken it (the caller reloads), False if we do not.
        Raises (OSError, asyncpg errors, TimeoutError) when a held lead is lost."""
        if self._conn is not None and not self._conn.is_closed():
            if time.monotonic() - self._last_beat >= _BEAT_S:
                await self._conn.fetchval("SELECT 1", timeout=_BEAT_TIMEOUT_S)
                self._last_beat = time.monotonic()
            return True
        await self._drop_lead()
        conn = self._candidate
        self._candidate = None
        if conn is None or conn.is_closed():
            conn = await self._connect()
            if conn is None:
                return False
        try:
            won = await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY, timeout=_BEAT_TIMEOUT_S)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            conn.terminate()
            return False
        if not won:
            # Kept for the next try (every ELECTION_EVERY_S, inside the connection's
            # idle_session_timeout): a new connection every try was a PostgreSQL backend
            # started and torn down every 2 s by every process that does not lead.
            self._candidate = conn
            return False
        self._conn = conn
        self._last_beat = time.monotonic()
        self.leading = True
        log.info("this process now leads matching")
        return None

    async def _connect(self) -> asyncpg.Connection[asyncpg.Record] | None:
        try:
            return await asyncpg.connect(
                self._url,
                timeout=3,
                server_settings={"idle_session_timeout": str(int(_LEASE_S * 1000))},
            )
        except asyncpg.PostgresError as exc:
            # Refused by what answered, not unreachable: PgBouncer, for one, refuses the
            # lease's startup parameter. Say what to do, once (it would repeat every 2 s).
            if not self._told:
                self._told = True
                log.error(
                    "matching cannot take the lead (%s); behind a transaction pooler, set "
                    "PEERCHAT_DATABASE_DIRECT_URL to PostgreSQL itself (docs/scaling.md)",
                    type(exc).__name__,
                )
            return None
        except (OSError, TimeoutError):
            return None

    async def beat(self) -> None:
        """Say something on the lock connection if a beat is due, in the middle of a long
        cycle (a burst of offers), so the lease outlives it. Raises as `hold` does."""
        if self._conn is None or self._beating or time.monotonic() - self._last_beat < _BEAT_S:
            return  # not due, or a beat is already on its way (one query at a time)
        self._beating = True
        try:
            await self._conn.fetchval("SELECT 1", timeout=_BEAT_TIMEOUT_S)
        finally:
            self._beating = False
        self._last_beat = time.monotonic()

    async def resign(self) -> None:
        """Drop the lead (and the lock connection, so the lock frees at once), or, for a
        process that does not lead, its connection kept between tries."""
        if self._candidate is not None:
            with contextlib.suppress(Exception):
                await self._candidate.close(timeout=_CLOSE_S)
            self._candidate = None
        await self._drop_lead()

    async def _drop_lead(self) -> None:
        if self.leading:
            log.info("this process no longer leads matching")
        self.leading = False
        if self._conn is not None:
            # Bounded: a hung PostgreSQL never answers a graceful close (asyncpg aborts
            # the connection when the timeout passes).
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=_CLOSE_S)
            self._conn = None
