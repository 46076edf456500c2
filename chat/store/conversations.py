"""Conversations, their messages, feedback and the audit log of supervisor reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from chat.people import Participants, Person, member, specialist
from chat.store import transfer_end, wrap_up
from chat.store.db import Db, FromRow, Row
from chat.store.states import CONVERSATION_ACTIVE, CONVERSATION_ENDED
from protocol.ids import ConversationId, UserId


@dataclass(frozen=True, slots=True)
class Conversation(FromRow):
    id: ConversationId
    member_id: UserId
    member_alias: str
    specialist_id: UserId
    specialist_name: str
    tags: list[str]
    state: str
    last_seq: int
    started_at: datetime
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None

    @property
    def member(self) -> Person:
        return member(self.member_id)

    @property
    def specialist(self) -> Person:
        return specialist(self.specialist_id)

    @property
    def participants(self) -> Participants:
        return (self.member, self.specialist)

    def has(self, person: Person) -> bool:
        """Whether `person` takes part: the pair (role, sub), never the `sub` alone
        (PRODUCT.md §4)."""
        return person in (self.member, self.specialist)

    def peer_of(self, person: Person) -> Person:
        """The other participant of `person`, who must take part."""
        return self.specialist if person == self.member else self.member


@dataclass(frozen=True, slots=True)
class StoredMessage(FromRow):
    conversation_id: str
    seq: int
    sender_id: str
    sender_role: str
    sender_name: str
    client_msg_id: str
    body: str
    sent_at: datetime


_CONV = Conversation.columns()
_MSG = StoredMessage.columns()


async def get(db: Db, conversation_id: str) -> Conversation | None:
    row = await db.fetchrow(f"SELECT {_CONV} FROM conversations WHERE id = $1", conversation_id)
    return Conversation.of(row) if row else None


async def get_many(db: Db, conversation_ids: list[str]) -> list[Conversation]:
    rows = await db.fetch(f"SELECT {_CONV} FROM conversations WHERE id = ANY($1::text[])", conversation_ids)
    return [Conversation.of(r) for r in rows]


async def of_person(db: Db, person: Person, *, ended_within_s: float = 0) -> list[Conversation]:
    """The person's active conversations, plus those ended within `ended_within_s`: as a
    member or as a specialist, by their role; a supervisor takes part in none."""
    column = {"member": "member_id", "specialist": "specialist_id"}.get(person.role)
    if column is None:
        return []
    rows = await db.fetch(
        f"""SELECT {_CONV} FROM conversations
            WHERE {column} = $1
              AND (state = {CONVERSATION_ACTIVE} OR ended_at > now() - make_interval(secs => $2))
            ORDER BY started_at""",
        person.id,
        ended_within_s,
    )
    return [Conversation.of(r) for r in rows]


async def end(
    db: asyncpg.Pool[asyncpg.Record], conversation_id: str, *, by: str, reason: str
) -> Conversation | None:
    """End an active conversation and free the specialist's slot, in one transaction.
    None if it was not active (someone else ended it first)."""
    async with db.acquire() as conn, conn.transaction():
        row = await end_in(conn, conversation_id, by=by, reason=reason)
    return Conversation.of(row) if row is not None else None


async def end_in(conn: Db, conversation_id: str, *, by: str, reason: str) -> Row | None:
    """`end` inside the caller's transaction; the row carries `request_id` too."""
    row = await conn.fetchrow(
        f"""UPDATE conversations SET state = {CONVERSATION_ENDED.to}, ended_at = now(), ended_by = $2,
                end_reason = $3
            WHERE id = $1 AND state IN {CONVERSATION_ENDED.from_} RETURNING {_CONV}, request_id""",
        conversation_id,
        by,
        reason,
    )
    if row is None:
        return None
    await conn.execute(
        """UPDATE specialists SET active_chats = GREATEST(active_chats - 1, 0),
               idle_since = CASE WHEN active_chats <= 1 THEN now() ELSE idle_since END
           WHERE id = $1""",
        row["specialist_id"],
    )
    await wrap_up.begin(conn, conversation_id, row["specialist_id"])
    await transfer_end.cancel_with_conversation(conn, conversation_id)
    return row


class Appended(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    ENDED = "ended"


async def append(
    db: Db,
    *,
    conversation_id: str,
    sender_id: str,
    sender_role: str,
    sender_name: str,
    client_msg_id: str,
    body: str,
) -> tuple[Appended, int, datetime]:
    """Store one message (`append_messages` in the schema, with one element; the hot path
    batches through chat/store/appender.py); returns (outcome, seq, sent_at). Only a
    STORED or DUPLICATE outcome may be acknowledged, and only after this returns: it
    returns after COMMIT."""
    row = await db.fetchrow(
        "SELECT outcome, seq, sent_at FROM append_messages($1, $2, $3, $4, $5, $6)",
        [conversation_id],
        [sender_id],
        [sender_role],
        [sender_name],
        [client_msg_id],
        [body],
    )
    assert row is not None
    return Appended(row["outcome"]), row["seq"], row["sent_at"]


_MAX_SEQ = 2**31 - 1  # `seq` is a PostgreSQL integer; a larger bound would fail to encode


async def messages_after(
    db: Db, conversation_id: str, after_seq: int, limit: int = 500, *, held_by: str | None = None
) -> list[StoredMessage]:
    """`held_by`: only if that specialist holds the conversation (a socket's catch-up: a
    conversation handed on to someone else is not theirs to read any more, PRODUCT.md §9)."""
    after_seq = min(max(after_seq, 0), _MAX_SEQ)
    rows = await db.fetch(
        f"""SELECT {_MSG} FROM messages WHERE conversation_id = $1 AND seq > $2
              AND ($4::text IS NULL
                   OR EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND specialist_id = $4))
            ORDER BY seq LIMIT $3""",
        conversation_id,
        after_seq,
        limit,
        held_by,
    )
    return [StoredMessage.of(r) for r in rows]


async def get_message(db: Db, conversation_id: str, seq: int) -> StoredMessage | None:
    row = await db.fetchrow(
        f"SELECT {_MSG} FROM messages WHERE conversation_id = $1 AND seq = $2", conversation_id, seq
    )
    return StoredMessage.of(row) if row else None


async def save_feedback(
    db: Db, conversation_id: str, member_id: str, rating: int, comment: str | None
) -> None:
    """A member may change their rating; the last one counts."""
    await db.execute(
        """INSERT INTO feedback (conversation_id, member_id, rating, comment) VALUES ($1, $2, $3, $4)
           ON CONFLICT (conversation_id) DO UPDATE SET rating = $3, comment = $4, created_at = now()""",
        conversation_id,
        member_id,
        rating,
        comment,
    )


async def active_count(db: Db) -> int:
    """Active conversations, service-wide (the supervisor's `active_conversations`)."""
    return int(
        await db.fetchval(f"SELECT count(*) FROM conversations WHERE state = {CONVERSATION_ACTIVE}") or 0
    )
