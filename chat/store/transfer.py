"""Handing a conversation on (PRODUCT.md §9): warm, to one named specialist, or cold, back
to the queue. The `transfers` rows follow `matching.lifecycle.TRANSFER_TRANSITIONS`.

Who holds a conversation is `conversations.specialist_id`, and every change to it here is a
compare-and-set on its current value inside one transaction that also moves the specialists'
`active_chats` and the transfer's state, so two accepts, a transfer racing an `end`, or a
transfer racing the reconnect grace's re-queue leave exactly one holder (or, while a cold
transfer waits, none: specialist_id '', which no sender can match in `append_messages`).
The conversation stays `active` throughout, so the member's messages keep their `seq`.

Here: the rows, the refusals, the helpers every transfer write shares, and a cold
transfer's taking. Starting one of either kind is chat/store/transfer_start.py; a warm one's
accept, decline and expiry chat/store/transfer_warm.py; the reads chat/store/transfer_reads.py.

Lock order: the conversation row first, then specialists rows (as `conversations.end_in`);
the cold transfer's assignment (chat/store/assignment.py) locks its request, the taker's
specialist row, then the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from chat.store import wrap_up
from chat.store.conversations import Conversation
from chat.store.db import Db, FromRow
from chat.store.queue import PENDING, Request
from chat.store.states import (
    CONVERSATION_ACTIVE,
    TRANSFER_ACCEPTED,
    TRANSFER_OFFERED,
    TRANSFER_QUEUED,
)

# specialist_id of a conversation nobody holds while its cold transfer waits.
NOBODY = ""

_CONV = Conversation.columns()
_REQ = Request.columns()


@dataclass(frozen=True, slots=True)
class Transfer(FromRow):
    id: str
    conversation_id: str
    from_specialist_id: str
    from_name: str
    by_role: str
    by_id: str
    to_specialist_id: str | None
    request_id: str | None
    note_id: str | None
    state: str
    created_at: datetime
    expires_at: datetime | None


_TRANSFER = Transfer.columns()


class Refusal(StrEnum):
    """Why a transfer was not started or taken; nothing was changed."""

    NOT_FOUND = "not_found"  # no such conversation
    FORBIDDEN = "forbidden"  # not the caller's conversation
    NOT_ACTIVE = "not_active"  # ended
    TRANSFERRING = "transferring"  # a transfer of it is already under way
    TARGET_SELF = "target_self"  # to the caller or to its own specialist
    TARGET_UNKNOWN = "target_unknown"
    LANGUAGE = "language"  # the target does not speak the conversation's language
    NO_SLOT = "no_slot"  # the target is full (chats, offers and warm transfers)
    WRAP_UP = "wrap_up"  # the target is in wrap-up
    BLOCKED = "blocked"  # a block or report bars the target from the member
    EXPIRED = "expired"  # (accept) no longer offered to this specialist


@dataclass(frozen=True, slots=True)
class Begun:
    """A transfer under way. Warm: `transfer.state` 'offered'; the sender still holds it.
    Cold: 'queued'; `conversation` (as it was) was held by `transfer.from_specialist_id`,
    who no longer holds it; `cut_seq` is the last seq they were entitled to, and `request`
    the queue entry."""

    transfer: Transfer
    conversation: Conversation
    note: str
    language: str | None
    priority: str
    cut_seq: int = 0
    request: Request | None = None


@dataclass(frozen=True, slots=True)
class Taken:
    """A warm transfer accepted: `conversation` is now the taker's; `from_specialist_id`
    lost it after seq `cut_seq`."""

    transfer: Transfer
    conversation: Conversation
    note: str
    cut_seq: int


class Abort(Exception):
    """A refusal inside a transfer's transaction (transfer_start.py, transfer_warm.py)."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


# Free slots of a specialist row `s`: chats, pending offers and pending warm transfers each
# hold one (PRODUCT.md §7). `$X` in `except_transfer` excludes the transfer being accepted.
def held_slots(except_transfer: str = "''") -> str:
    return f"""s.active_chats
        + (SELECT count(*) FROM offers o
            WHERE o.specialist_id = s.id AND o.state IN {PENDING} AND o.expires_at > now())
        + (SELECT count(*) FROM transfers t
            WHERE t.to_specialist_id = s.id AND t.state = {TRANSFER_OFFERED} AND t.expires_at > now()
              AND t.id <> {except_transfer})"""


async def lock_active(conn: Db, conversation_id: str) -> Conversation:
    row = await conn.fetchrow(f"SELECT {_CONV} FROM conversations WHERE id = $1 FOR UPDATE", conversation_id)
    if row is None:
        raise Abort(Refusal.NOT_FOUND)
    conv = Conversation.of(row)
    if conv.state != "active":
        raise Abort(Refusal.NOT_ACTIVE)
    return conv


async def origin_row(conn: Db, conversation_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT r.language, r.note, COALESCE(r.priority, 'normal') AS priority
             FROM conversations c LEFT JOIN requests r ON r.id = c.request_id WHERE c.id = $1""",
        conversation_id,
    )
    assert row is not None
    return row


async def origin_of(db: Db, conversation_id: str) -> tuple[str | None, str]:
    """The language and priority the conversation was asked for (its first request)."""
    row = await origin_row(db, conversation_id)
    return row["language"], row["priority"]


async def release(conn: Db, conversation_id: str, specialist_id: str) -> None:
    """The handing-on specialist's slot is free and their wrap-up starts (PRODUCT.md §8)."""
    await conn.execute(
        """UPDATE specialists SET active_chats = GREATEST(active_chats - 1, 0),
               idle_since = CASE WHEN active_chats <= 1 THEN now() ELSE idle_since END
           WHERE id = $1""",
        specialist_id,
    )
    await wrap_up.begin(conn, conversation_id, specialist_id)


async def note_body(conn: Db, note_id: str | None) -> str:
    if note_id is None:
        return ""
    body: str | None = await conn.fetchval("SELECT body FROM staff_notes WHERE id = $1", note_id)
    return body or ""


async def take_queued(conn: Db, request: Request, specialist_id: str, name: str) -> Conversation | None:
    """Inside the assignment of a cold transfer's request (chat/store/assignment.py): the
    taker now holds the conversation. None if it is no longer waiting for anyone."""
    row = await conn.fetchrow(
        f"""UPDATE conversations SET specialist_id = $2, specialist_name = $3
            WHERE id = $1 AND state = {CONVERSATION_ACTIVE} AND specialist_id = $4 RETURNING {_CONV}""",
        request.transfer_of,
        specialist_id,
        name,
        NOBODY,
    )
    if row is None:
        return None
    await conn.execute(
        f"""UPDATE transfers SET state = {TRANSFER_ACCEPTED.to}, decided_at = now(), taken_by = $2
            WHERE request_id = $1 AND state = {TRANSFER_QUEUED}""",
        request.id,
        specialist_id,
    )
    return Conversation.of(row)
