"""Supervisors who joined a conversation (PRODUCT.md §8 `join`), and their messages.

A joined supervisor's `send` does not go through the group commit (chat/store/appender.py,
which only knows the two participants): it is rare, so it takes its own transaction, with
the same conversation-row lock that keeps `seq` gap-free for everyone.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from chat.store.conversations import Appended
from chat.store.db import Db


async def join(db: Db, conversation_id: str, supervisor_id: str, supervisor_name: str) -> bool:
    done = await db.fetchval(
        """INSERT INTO conversation_joins (conversation_id, supervisor_id, supervisor_name)
           VALUES ($1, $2, $3)
           ON CONFLICT (conversation_id, supervisor_id) WHERE left_at IS NULL DO NOTHING
           RETURNING true""",
        conversation_id,
        supervisor_id,
        supervisor_name,
    )
    return bool(done)


async def joined(db: Db, conversation_id: str, supervisor_id: str) -> bool:
    found = await db.fetchval(
        """SELECT 1 FROM conversation_joins
           WHERE conversation_id = $1 AND supervisor_id = $2 AND left_at IS NULL""",
        conversation_id,
        supervisor_id,
    )
    return bool(found)


async def leave(db: Db, conversation_id: str, supervisor_id: str) -> bool:
    done = await db.fetchval(
        """UPDATE conversation_joins SET left_at = now()
           WHERE conversation_id = $1 AND supervisor_id = $2 AND left_at IS NULL RETURNING true""",
        conversation_id,
        supervisor_id,
    )
    return bool(done)


async def append(
    pool: asyncpg.Pool[asyncpg.Record],
    conversation_id: str,
    supervisor_id: str,
    name: str,
    client_msg_id: str,
    body: str,
) -> tuple[Appended, int, datetime | None]:
    """Store a joined supervisor's message: (outcome, seq, sent_at). FORBIDDEN if they have
    not joined (or left); a repeated client_msg_id answers the stored one."""
    async with pool.acquire() as db, db.transaction():
        conv = await db.fetchrow(
            "SELECT state, last_seq FROM conversations WHERE id = $1 FOR UPDATE", conversation_id
        )
        if conv is None:
            return Appended.NOT_FOUND, 0, None
        if not await joined(db, conversation_id, supervisor_id):
            return Appended.FORBIDDEN, 0, None
        dup = await db.fetchrow(
            """SELECT seq, sent_at FROM messages WHERE conversation_id = $1 AND sender_id = $2
                 AND client_msg_id = $3 AND sender_role = 'supervisor'""",
            conversation_id,
            supervisor_id,
            client_msg_id,
        )
        if dup is not None:
            return Appended.DUPLICATE, dup["seq"], dup["sent_at"]
        if conv["state"] != "active":
            return Appended.ENDED, 0, None
        seq: int = conv["last_seq"] + 1
        await db.execute("UPDATE conversations SET last_seq = $2 WHERE id = $1", conversation_id, seq)
        sent_at: datetime = await db.fetchval(
            """INSERT INTO messages (conversation_id, seq, sender_id, sender_role, sender_name,
                                     client_msg_id, body, sent_at)
               VALUES ($1, $2, $3, 'supervisor', $4, $5, $6, clock_timestamp()) RETURNING sent_at""",
            conversation_id,
            seq,
            supervisor_id,
            name,
            client_msg_id,
            body,
        )
        return Appended.STORED, seq, sent_at
