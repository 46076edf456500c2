"""Staff notes (PRODUCT.md §9): a conversation's notes by its specialist and supervisors.

Staff only: nothing here is ever read on a member's behalf. A supervisor's `whisper` (§8)
is one more note of kind `whisper` (`add(..., kind="whisper")`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from chat.people import Actor
from chat.store.db import Db, FromRow

# How many notes `notes` returns at most, oldest first.
MAX_NOTES = 500


@dataclass(frozen=True, slots=True)
class StaffNote(FromRow):
    id: str
    conversation_id: str
    kind: str
    author_role: str
    author_id: str
    author_name: str
    body: str
    at: datetime


_NOTE = StaffNote.columns()


async def add(
    db: Db,
    conversation_id: str,
    *,
    author_role: str,
    author_id: str,
    author_name: str,
    body: str,
    kind: str = "note",
) -> StaffNote:
    row = await db.fetchrow(
        f"""INSERT INTO staff_notes (id, conversation_id, kind, author_role, author_id, author_name, body)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_NOTE}""",
        uuid.uuid4().hex,
        conversation_id,
        kind,
        author_role,
        author_id,
        author_name,
        body,
    )
    assert row is not None
    return StaffNote.of(row)


async def add_by(db: Db, conversation_id: str, author: Actor, body: str, kind: str = "note") -> StaffNote:
    """`add`, with the author's role, id and name taken from who writes."""
    return await add(
        db,
        conversation_id,
        author_role=author.role,
        author_id=author.user_id,
        author_name=author.name,
        body=body,
        kind=kind,
    )


async def of_conversation(db: Db, conversation_id: str, limit: int = MAX_NOTES) -> list[StaffNote]:
    rows = await db.fetch(
        f"SELECT {_NOTE} FROM staff_notes WHERE conversation_id = $1 ORDER BY at, id LIMIT $2",
        conversation_id,
        limit,
    )
    return [StaffNote.of(r) for r in rows]
