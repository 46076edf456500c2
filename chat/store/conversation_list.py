"""The supervisor's list of conversations (`GET /api/conversations`, PRODUCT.md §6):
who is talking with whom, since when, at what risk. Never a message body or a member id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chat.store.db import Db

MAX_LIMIT = 500
DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class ListedConversation:
    id: str
    state: str
    tags: list[str]
    started_at: datetime
    ended_at: datetime | None
    member_alias: str
    specialist_id: str
    specialist_name: str
    risk: str | None
    flags: list[str]
    priority: str


async def list_conversations(
    db: Db,
    *,
    state: str | None = None,
    risk: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: str | None = None,
) -> list[ListedConversation] | None:
    """Newest first (by start). `before` is a conversation id to page back from; None if
    that id is unknown (the caller answers 4xx rather than a silently different page)."""
    cursor: tuple[datetime, str] | None = None
    if before is not None:
        started = await db.fetchval("SELECT started_at FROM conversations WHERE id = $1", before)
        if started is None:
            return None
        cursor = (started, before)
    rows = await db.fetch(
        """SELECT c.id, c.state, c.tags, c.started_at, c.ended_at, c.member_alias, c.specialist_id,
                  c.specialist_name, c.risk, c.flags, COALESCE(r.priority, 'normal') AS priority
             FROM conversations c LEFT JOIN requests r ON r.id = c.request_id
            WHERE ($1::text IS NULL OR c.state = $1)
              AND ($2::text IS NULL OR c.risk = $2)
              AND ($3::timestamptz IS NULL OR (c.started_at, c.id) < ($3, $4::text))
            ORDER BY c.started_at DESC, c.id DESC
            LIMIT $5""",
        state,
        risk,
        cursor[0] if cursor else None,
        cursor[1] if cursor else None,
        limit,
    )
    return [ListedConversation(**dict(r)) for r in rows]


async def urgent_chats_by_specialist(db: Db) -> dict[str, int]:
    """Per specialist, their active conversations that are urgent or at high risk (the
    urgent-load cap, PRODUCT.md §8)."""
    rows = await db.fetch(
        """SELECT c.specialist_id, count(*) AS n
             FROM conversations c LEFT JOIN requests r ON r.id = c.request_id
            WHERE c.state = 'active' AND (c.risk IS NOT NULL OR r.priority = 'urgent')
            GROUP BY c.specialist_id"""
    )
    return {r["specialist_id"]: r["n"] for r in rows}
