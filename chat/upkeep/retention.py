"""The retention sweep (PRODUCT.md §10): conversations ended more than
`PEERCHAT_RETENTION_DAYS` ago lose their content, batch by batch.

It runs in the `release` step (`peerchat migrate`) and in the background of every `web`
process, one process at a time (a PostgreSQL advisory lock on the sweep's own connection;
a process that dies drops its connection and with it the lock; that connection goes to
PostgreSQL itself, `Settings.session_database_url`, never through a transaction pooler,
where the lock would outlive us on some server session). Each batch is one short
transaction that removes the content of a few conversations and marks them swept
(chat/store/privacy.py), so a sweep killed at any point leaves whole batches done and the
rest untouched, and the next run simply continues. Running it again finds nothing to do.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import asyncpg

from chat.config import Settings
from chat.metrics import METRICS
from chat.store import privacy as store
from chat.store.privacy import Swept

log = logging.getLogger("peerchat.retention")

LOCK_KEY = 0x70632D7377656570  # "pc-sweep"; the migrations hold another key


async def sweep(
    conn: asyncpg.Connection[asyncpg.Record],
    retention_days: float,
    max_messages: int,
    observe: Callable[[Swept, float], None] | None = None,
) -> Swept | None:
    """Sweep everything due, on `conn` (a connection of its own: it holds the lock); None
    if another process is sweeping now. `observe(batch, seconds)` is told of each batch
    (bench/retention.py times them: a batch's length is how long it holds its rows)."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
        return None
    retention_s = retention_days * 86400
    began = time.monotonic()
    total = Swept()
    try:
        while True:
            at = time.perf_counter()
            batch = await store.sweep_conversations(conn, retention_s, max_messages)
            if observe is not None and batch.conversations:
                observe(batch, time.perf_counter() - at)
            _count(batch)
            total += batch
            if not batch.conversations:
                break
        while True:
            batch = await store.sweep_requests(conn, retention_s)
            _count(batch)
            total += batch
            if not batch.requests:
                break
        left = await store.backlog(conn, retention_s)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    METRICS.retention_backlog.set(left)
    METRICS.retention_last_run.set(time.time())
    # Counts only: never an id, an alias or a body.
    log.info(
        "retention sweep: %d conversations, %d messages, %d requests swept in %.2f s; backlog %d",
        total.conversations,
        total.messages,
        total.requests,
        time.monotonic() - began,
        left,
    )
    return total


def _count(batch: Swept) -> None:
    if batch.conversations:
        METRICS.retention_swept.labels("conversations").inc(batch.conversations)
    if batch.messages:
        METRICS.retention_swept.labels("messages").inc(batch.messages)
    if batch.requests:
        METRICS.retention_swept.labels("requests").inc(batch.requests)


async def run_once(settings: Settings) -> Swept | None:
    conn = await asyncpg.connect(settings.session_database_url, timeout=5)
    try:
        return await sweep(conn, settings.retention_days, settings.retention_batch_messages)
    finally:
        await conn.close()


async def run_forever(settings: Settings) -> None:
    """The background sweep of one `web` process: every PEERCHAT_RETENTION_SWEEP_S (with
    jitter, so processes started together do not all ask at once), try to sweep; if
    another process holds the lock, just refresh the backlog gauge. The first try comes
    after one interval: the `release` step has just swept before the processes started."""
    await asyncio.sleep(settings.retention_sweep_s * random.uniform(0.5, 1.0))
    while True:
        try:
            swept = await run_once(settings)
            if swept is None:
                conn = await asyncpg.connect(settings.session_database_url, timeout=5)
                try:
                    METRICS.retention_backlog.set(await store.backlog(conn, settings.retention_days * 86400))
                finally:
                    await conn.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Its text could quote a row; the type is enough to act on.
            log.warning("retention sweep failed: %s; retrying later", type(exc).__name__)
        await asyncio.sleep(settings.retention_sweep_s * random.uniform(0.9, 1.1))
