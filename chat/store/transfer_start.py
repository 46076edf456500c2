"""Starting a transfer (PRODUCT.md §9): warm, an offer to one named specialist whose target
is checked here (language, slots, wrap-up, boundaries), or cold, where the sender's part
ends at once and the conversation waits in the queue as a new request. The rules and lock
order every transfer write keeps are chat/store/transfer.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from chat.store import boundaries, notes
from chat.store.conversations import Conversation
from chat.store.db import Db
from chat.store.queue import Request
from chat.store.states import (
    CONVERSATION_ACTIVE,
    TRANSFER_EXPIRED,
    TRANSFER_OFFERED,
    TRANSFER_OPEN,
    TRANSFER_QUEUED,
)
from chat.store.transfer import (
    NOBODY,
    Abort,
    Begun,
    Refusal,
    Transfer,
    held_slots,
    lock_active,
    origin_row,
    release,
)

_REQ = Request.columns()
_TRANSFER = Transfer.columns()


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
            conv = await lock_active(conn, conversation_id)
            if by_role == "specialist" and conv.specialist_id != by_id:
                raise Abort(Refusal.FORBIDDEN)
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
                raise Abort(Refusal.TRANSFERRING)
            origin = await origin_row(conn, conversation_id)
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
    except Abort as abort:
        return abort.refusal


async def _check_target(
    conn: Db, conv: Conversation, to_specialist: str, by_id: str, language: str | None
) -> None:
    if to_specialist in (conv.specialist_id, by_id):
        raise Abort(Refusal.TARGET_SELF)
    await conn.execute("SELECT 1 FROM specialists WHERE id = $1 FOR UPDATE", to_specialist)
    target = await conn.fetchrow(
        f"""SELECT s.languages, s.max_chats - ({held_slots()}) AS room,
                   COALESCE(s.wrap_up_until > now(), false) AS wrapping
              FROM specialists s WHERE s.id = $1""",
        to_specialist,
    )
    if target is None:
        raise Abort(Refusal.TARGET_UNKNOWN)
    if language and language not in target["languages"]:
        raise Abort(Refusal.LANGUAGE)
    if target["wrapping"]:
        raise Abort(Refusal.WRAP_UP)
    if target["room"] < 1:
        raise Abort(Refusal.NO_SLOT)
    if await boundaries.is_barred(conn, conv.member_id, to_specialist):
        raise Abort(Refusal.BLOCKED)


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
    await release(conn, conv.id, conv.specialist_id)
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
