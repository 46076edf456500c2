"""Handing a conversation on (PRODUCT.md §9): warm, to one named specialist, or cold, back
to the queue. The `transfers` rows follow `matching.lifecycle.TRANSFER_TRANSITIONS`.

Who holds a conversation is `conversations.specialist_id`, and every change to it here is a
compare-and-set on its current value inside one transaction that also moves the specialists'
`active_chats` and the transfer's state, so two accepts, a transfer racing an `end`, or a
transfer racing the reconnect grace's re-queue leave exactly one holder (or, while a cold
transfer waits, none: specialist_id '', which no sender can match in `append_messages`).
The conversation stays `active` throughout, so the member's messages keep their `seq`.

Lock order: the conversation row first, then specialists rows (as `conversations.end_in`);
the cold transfer's assignment (chat/store/assignment.py) locks its request, the taker's
specialist row, then the conversation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from chat.store import boundaries, notes, wrap_up
from chat.store.conversations import Conversation
from chat.store.db import Db, FromRow
from chat.store.queue import PENDING, Request
from chat.store.states import (
    CONVERSATION_ACTIVE,
    TRANSFER_ACCEPTED,
    TRANSFER_CANCELLED,
    TRANSFER_EXPIRED,
    TRANSFER_OFFERED,
    TRANSFER_OPEN,
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


class _Abort(Exception):
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


async def _lock_active(conn: Db, conversation_id: str) -> Conversation:
    row = await conn.fetchrow(f"SELECT {_CONV} FROM conversations WHERE id = $1 FOR UPDATE", conversation_id)
    if row is None:
        raise _Abort(Refusal.NOT_FOUND)
    conv = Conversation.of(row)
    if conv.state != "active":
        raise _Abort(Refusal.NOT_ACTIVE)
    return conv


async def _origin(conn: Db, conversation_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT r.language, r.note, COALESCE(r.priority, 'normal') AS priority
             FROM conversations c LEFT JOIN requests r ON r.id = c.request_id WHERE c.id = $1""",
        conversation_id,
    )
    assert row is not None
    return row


async def origin_of(db: Db, conversation_id: str) -> tuple[str | None, str]:
    """The language and priority the conversation was asked for (its first request)."""
    row = await _origin(db, conversation_id)
    return row["language"], row["priority"]


async def _release(conn: Db, conversation_id: str, specialist_id: str) -> None:
    """The handing-on specialist's slot is free and their wrap-up starts (PRODUCT.md §8)."""
    await conn.execute(
        """UPDATE specialists SET active_chats = GREATEST(active_chats - 1, 0),
               idle_since = CASE WHEN active_chats <= 1 THEN now() ELSE idle_since END
           WHERE id = $1""",
        specialist_id,
    )
    await wrap_up.begin(conn, conversation_id, specialist_id)


async def begin(
    db: asyncpg.Pool[asyncpg.Record],
    conversation_id: str,
    *,
    by_role: str,
    by_id: str,
    by_name: str,
    to_specialist: str | None,
    note: str,
    expires_at: datetime,
) -> Begun | Refusal:
    """Start a transfer: warm when `to_specialist` is set (an offer until `expires_at`),
    else cold (the sender's part ends now, the conversation waits in the queue). The caller
    checks roles and the target's presence; everything stored is checked here."""
    try:
        async with db.acquire() as conn, conn.transaction():
            conv = await _lock_active(conn, conversation_id)
            if by_role == "specialist" and conv.specialist_id != by_id:
                raise _Abort(Refusal.FORBIDDEN)
            # A warm transfer whose offer timed out while no process was there to say so.
            await conn.execute(
                f"""UPDATE transfers SET state = {TRANSFER_EXPIRED.to}, decided_at = now()
                    WHERE conversation_id = $1 AND state = {TRANSFER_OFFERED} AND expires_at <= now()""",
                conversation_id,
            )
            if conv.specialist_id == NOBODY or await conn.fetchval(
                f"SELECT 1 FROM transfers WHERE conversation_id = $1 AND state IN {TRANSFER_OPEN}",
                conversation_id,
            ):
                raise _Abort(Refusal.TRANSFERRING)
            origin = await _origin(conn, conversation_id)
            if to_specialist is not None:
                await _check_target(conn, conv, to_specialist, by_id, origin["language"])
            note_row = await notes.add(
                conn,
                conversation_id,
                author_role=by_role,
                author_id=by_id,
                author_name=by_name,
                body=note,
                kind="transfer",
            )
            if to_specialist is not None:
                transfer = await _insert(
                    conn, conv, by_role, by_id, to_specialist, None, note_row.id, TRANSFER_OFFERED, expires_at
                )
                return Begun(transfer, conv, note, origin["language"], origin["priority"])
            return await _go_cold(conn, conv, origin, by_role, by_id, note_row.id, note)
    except _Abort as abort:
        return abort.refusal


async def _check_target(
    conn: Db, conv: Conversation, to_specialist: str, by_id: str, language: str | None
) -> None:
    if to_specialist in (conv.specialist_id, by_id):
        raise _Abort(Refusal.TARGET_SELF)
    await conn.execute("SELECT 1 FROM specialists WHERE id = $1 FOR UPDATE", to_specialist)
    target = await conn.fetchrow(
        f"""SELECT s.languages, s.max_chats - ({held_slots()}) AS room,
                   COALESCE(s.wrap_up_until > now(), false) AS wrapping
              FROM specialists s WHERE s.id = $1""",
        to_specialist,
    )
    if target is None:
        raise _Abort(Refusal.TARGET_UNKNOWN)
    if language and language not in target["languages"]:
        raise _Abort(Refusal.LANGUAGE)
    if target["wrapping"]:
        raise _Abort(Refusal.WRAP_UP)
    if target["room"] < 1:
        raise _Abort(Refusal.NO_SLOT)
    if await boundaries.is_barred(conn, conv.member_id, to_specialist):
        raise _Abort(Refusal.BLOCKED)


async def _insert(
    conn: Db,
    conv: Conversation,
    by_role: str,
    by_id: str,
    to_specialist: str | None,
    request_id: str | None,
    note_id: str,
    state: str,
    expires_at: datetime | None,
) -> Transfer:
    row = await conn.fetchrow(
        f"""INSERT INTO transfers (id, conversation_id, from_specialist_id, from_name, by_role, by_id,
                to_specialist_id, request_id, note_id, state, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {state}, $10) RETURNING {_TRANSFER}""",
        uuid.uuid4().hex,
        conv.id,
        conv.specialist_id,
        conv.specialist_name,
        by_role,
        by_id,
        to_specialist,
        request_id,
        note_id,
        expires_at,
    )
    assert row is not None
    return Transfer.of(row)


async def _go_cold(
    conn: Db,
    conv: Conversation,
    origin: asyncpg.Record,
    by_role: str,
    by_id: str,
    note_id: str,
    note: str,
) -> Begun:
    cut = await conn.fetchval(
        f"""UPDATE conversations SET specialist_id = $3, specialist_name = ''
            WHERE id = $1 AND state = {CONVERSATION_ACTIVE} AND specialist_id = $2 RETURNING last_seq""",
        conv.id,
        conv.specialist_id,
        NOBODY,
    )
    assert cut is not None  # the row is locked and was checked
    await _release(conn, conv.id, conv.specialist_id)
    request_row = await conn.fetchrow(
        f"""INSERT INTO requests (id, member_id, member_alias, tags, language, note, priority, avoid,
                transfer_of)
            VALUES ($1, $2, $3, $4, $5, $6, $7,
                    array_append({boundaries.BARRED_FOR.format(m="$2")}, $8), $9)
            RETURNING {_REQ}""",
        uuid.uuid4().hex,
        conv.member_id,
        conv.member_alias,
        conv.tags,
        origin["language"],
        origin["note"],
        origin["priority"],
        conv.specialist_id,
        conv.id,
    )
    assert request_row is not None
    request = Request.of(request_row)
    transfer = await _insert(conn, conv, by_role, by_id, None, request.id, note_id, TRANSFER_QUEUED, None)
    return Begun(transfer, conv, note, origin["language"], origin["priority"], int(cut), request)


async def accept_warm(
    db: asyncpg.Pool[asyncpg.Record], transfer_id: str, specialist_id: str
) -> Taken | Refusal:
    """The named specialist takes the conversation. EXPIRED if it is no longer offered to
    them; NO_SLOT or BLOCKED (then the transfer is cancelled and the sender keeps it)."""
    conversation_id = await db.fetchval(
        f"""SELECT conversation_id FROM transfers
            WHERE id = $1 AND to_specialist_id = $2 AND state = {TRANSFER_OFFERED}""",
        transfer_id,
        specialist_id,
    )
    if conversation_id is None:
        return Refusal.EXPIRED
    async with db.acquire() as conn, conn.transaction():
        try:
            conv = await _lock_active(conn, conversation_id)
        except _Abort:
            return Refusal.EXPIRED  # ended meanwhile (its end cancelled the transfer)
        row = await conn.fetchrow(
            f"""UPDATE transfers SET state = {TRANSFER_ACCEPTED.to}, decided_at = now(), taken_by = $2
                WHERE id = $1 AND to_specialist_id = $2 AND state IN {TRANSFER_ACCEPTED.from_}
                  AND state = {TRANSFER_OFFERED} AND expires_at > now()
                RETURNING {_TRANSFER}""",
            transfer_id,
            specialist_id,
        )
        if row is None:
            return Refusal.EXPIRED
        transfer = Transfer.of(row)
        refusal = await _take_slot(conn, specialist_id, except_transfer=transfer_id)
        if refusal is None and await boundaries.is_barred(conn, conv.member_id, specialist_id):
            refusal = Refusal.BLOCKED
        if refusal is not None:
            await conn.execute(
                f"""UPDATE transfers SET state = {TRANSFER_CANCELLED.to}, decided_at = now(), taken_by = NULL
                    WHERE id = $1""",
                transfer_id,
            )
            return refusal
        name = await conn.fetchval("SELECT name FROM specialists WHERE id = $1", specialist_id)
        moved = await conn.fetchrow(
            f"""UPDATE conversations SET specialist_id = $3, specialist_name = $4
                WHERE id = $1 AND state = {CONVERSATION_ACTIVE} AND specialist_id = $2
                RETURNING {_CONV}""",
            conversation_id,
            transfer.from_specialist_id,
            specialist_id,
            name,
        )
        assert moved is not None  # locked, active, and an open transfer keeps its holder
        await _release(conn, conversation_id, transfer.from_specialist_id)
        note = await note_body(conn, transfer.note_id)
    taken = Conversation.of(moved)
    return Taken(transfer, taken, note, taken.last_seq)


async def _take_slot(conn: Db, specialist_id: str, *, except_transfer: str) -> Refusal | None:
    await conn.execute("SELECT 1 FROM specialists WHERE id = $1 FOR UPDATE", specialist_id)
    took = await conn.fetchval(
        f"""UPDATE specialists s SET active_chats = active_chats + 1, missed_offers = 0, idle_since = now()
            WHERE id = $1 AND ({held_slots("$2")}) < max_chats RETURNING id""",
        specialist_id,
        except_transfer,
    )
    return None if took is not None else Refusal.NO_SLOT


async def note_body(conn: Db, note_id: str | None) -> str:
    if note_id is None:
        return ""
    body: str | None = await conn.fetchval("SELECT body FROM staff_notes WHERE id = $1", note_id)
    return body or ""


async def close_warm(
    db: asyncpg.Pool[asyncpg.Record], transfer_id: str, outcome: str, specialist_id: str | None = None
) -> Transfer | None:
    """Decline (`outcome` 'declined', by its target) or expire ('expired') a warm transfer
    still offered; the sender keeps the conversation. None if it was not offered."""
    row = await db.fetchrow(
        f"""UPDATE transfers SET state = $2, decided_at = now()
            WHERE id = $1 AND state = {TRANSFER_OFFERED} AND ($3::text IS NULL OR to_specialist_id = $3)
            RETURNING {_TRANSFER}""",
        transfer_id,
        outcome,
        specialist_id,
    )
    return Transfer.of(row) if row is not None else None


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
