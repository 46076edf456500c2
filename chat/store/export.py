"""The reads behind a member's export (PRODUCT.md §10, GET /api/me/export in chat/web/me.py):
their requests, conversations, messages page by page, and feedback. docs/privacy.md is the
data map."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chat.store.db import Db


@dataclass(frozen=True, slots=True)
class ExportedConversation:
    id: str
    tags: list[str]
    state: str
    started_at: datetime
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    member_alias: str
    specialist_name: str


async def export_requests(conn: Db, member_id: str) -> list[dict[str, object]]:
    rows = await conn.fetch(
        """SELECT id, tags, language, note, priority, state, created_at, closed_at, cancel_reason
             FROM requests WHERE member_id = $1 ORDER BY created_at, id""",
        member_id,
    )
    return [dict(r) for r in rows]


async def export_conversations(conn: Db, member_id: str) -> list[ExportedConversation]:
    rows = await conn.fetch(
        """SELECT id, tags, state, started_at, ended_at, ended_by, end_reason, member_alias, specialist_name
             FROM conversations WHERE member_id = $1 ORDER BY started_at, id""",
        member_id,
    )
    return [ExportedConversation(**dict(r)) for r in rows]


async def export_messages(
    db: Db, conversation_id: str, after_seq: int, limit: int
) -> list[dict[str, object]]:
    """One page of the conversation's messages after `after_seq`, in order. A page per
    query, no transaction across pages: a slow reader of the export holds no connection
    while it reads (chat/web/me.py)."""
    rows = await db.fetch(
        """SELECT seq, sender_role, sender_name, body, sent_at FROM messages
            WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
        conversation_id,
        after_seq,
        limit,
    )
    return [dict(row) for row in rows]


async def export_feedback(conn: Db, member_id: str) -> list[dict[str, object]]:
    rows = await conn.fetch(
        """SELECT conversation_id, rating, comment, created_at FROM feedback
            WHERE member_id = $1 ORDER BY created_at""",
        member_id,
    )
    return [dict(r) for r in rows]
