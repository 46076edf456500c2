"""Open monitors: which watching socket follows which live conversation (PRODUCT.md §8)."""

from __future__ import annotations

from dataclasses import dataclass

from chat.store.db import Db


@dataclass(frozen=True, slots=True)
class OpenMonitor:
    conversation_id: str
    watcher: str
    supervisor_name: str


async def start(db: Db, conversation_id: str, watcher: str, supervisor_id: str, supervisor_name: str) -> bool:
    """Open a watch; False if this socket already watches that conversation."""
    done = await db.fetchval(
        """INSERT INTO monitors (conversation_id, watcher, supervisor_id, supervisor_name)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (conversation_id, watcher) WHERE ended_at IS NULL DO NOTHING
           RETURNING true""",
        conversation_id,
        watcher,
        supervisor_id,
        supervisor_name,
    )
    return bool(done)


async def stop(db: Db, conversation_id: str, watcher: str) -> bool:
    done = await db.fetchval(
        """UPDATE monitors SET ended_at = now()
           WHERE conversation_id = $1 AND watcher = $2 AND ended_at IS NULL RETURNING true""",
        conversation_id,
        watcher,
    )
    return bool(done)


async def stop_watcher(db: Db, watcher: str) -> list[str]:
    """The socket went away: end its watches; the conversations they followed."""
    rows = await db.fetch(
        """UPDATE monitors SET ended_at = now() WHERE watcher = $1 AND ended_at IS NULL
           RETURNING conversation_id""",
        watcher,
    )
    return [r["conversation_id"] for r in rows]


async def stop_conversation(db: Db, conversation_id: str) -> None:
    await db.execute(
        "UPDATE monitors SET ended_at = now() WHERE conversation_id = $1 AND ended_at IS NULL",
        conversation_id,
    )


async def open_monitors(db: Db) -> list[OpenMonitor]:
    rows = await db.fetch(
        "SELECT conversation_id, watcher, supervisor_name FROM monitors WHERE ended_at IS NULL"
    )
    return [OpenMonitor(**dict(r)) for r in rows]


async def watching(db: Db, conversation_id: str) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM monitors WHERE conversation_id = $1 AND ended_at IS NULL", conversation_id
        )
        or 0
    )
