"""Ending a conversation whose specialist never came back, and putting the member back in line.

One transaction, a compare-and-set on the conversation's state: however many processes
decide at once that the grace has passed, exactly one ends the conversation and re-queues
the member; the others get None.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from chat.store.conversations import Conversation, end_in
from chat.store.db import Db
from chat.store.queue import Request, new_id
from chat.store.states import CONVERSATION_ACTIVE

_REQ = Request.columns()


@dataclass(frozen=True, slots=True)
class PeerGone:
    conversation: Conversation
    # The member's new request, or None if they already had an open one.
    request: Request | None


async def specialists_in_conversation(db: Db) -> dict[str, list[tuple[str, str]]]:
    """Specialist id → (conversation id, member id) of each of their active conversations
    (not those waiting, after a cold transfer, for their next specialist: nobody holds them)."""
    rows = await db.fetch(
        f"""SELECT id, member_id, specialist_id FROM conversations
            WHERE state = {CONVERSATION_ACTIVE} AND specialist_id <> '' ORDER BY id"""
    )
    found: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        found.setdefault(row["specialist_id"], []).append((row["id"], row["member_id"]))
    return found


async def end_and_requeue(
    db: asyncpg.Pool[asyncpg.Record], conversation_id: str, specialist_id: str | None = None
) -> PeerGone | None:
    """End the active conversation (by `system`, reason `peer_gone`), free the specialist's
    slot, and queue the member again with the original request's tags, language, note and
    priority, preferring that specialist, and with the original `created_at`, so they keep
    the place in line they had before they were matched. None if it was not active, or
    (`specialist_id` given) no longer held by that specialist: a transfer took it from the
    one who did not come back (PRODUCT.md §9), and its new holder is not gone."""
    async with db.acquire() as conn, conn.transaction():
        if specialist_id is not None:
            holder = await conn.fetchval(
                "SELECT specialist_id FROM conversations WHERE id = $1 FOR UPDATE", conversation_id
            )
            if holder != specialist_id:
                return None
        row = await end_in(conn, conversation_id, by="system", reason="peer_gone")
        if row is None:
            return None
        conv = Conversation.of(row)
        original = None
        if row["request_id"] is not None:
            original = await conn.fetchrow(
                "SELECT language, note, priority, avoid, created_at FROM requests WHERE id = $1",
                row["request_id"],
            )
        again = await conn.fetchrow(
            f"""INSERT INTO requests (id, member_id, member_alias, tags, language, note, priority,
                    prefer_specialist, avoid, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT DO NOTHING RETURNING {_REQ}""",
            new_id(),
            conv.member_id,
            conv.member_alias,
            conv.tags,
            original["language"] if original else None,
            original["note"] if original else None,
            original["priority"] if original else "normal",
            conv.specialist_id,
            [s for s in (original["avoid"] if original else []) if s != conv.specialist_id],
            original["created_at"] if original else conv.started_at,
        )
    return PeerGone(conv, Request.of(again) if again is not None else None)
