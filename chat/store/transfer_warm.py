"""A warm transfer's outcome (PRODUCT.md §9): its named target accepts it (the conversation
changes hands, as a compare-and-set on its holder), declines it, or it expires (the sender
keeps it). Starting one, and the rules and lock order every transfer write keeps, are
chat/store/transfer.py.
"""

from __future__ import annotations

import asyncpg

from chat.store import boundaries
from chat.store.conversations import Conversation
from chat.store.db import Db
from chat.store.states import CONVERSATION_ACTIVE, TRANSFER_ACCEPTED, TRANSFER_CANCELLED, TRANSFER_OFFERED
from chat.store.transfer import Abort, Refusal, Taken, Transfer, held_slots, lock_active, note_body, release

_CONV = Conversation.columns()
_TRANSFER = Transfer.columns()


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
            conv = await lock_active(conn, conversation_id)
        except Abort:
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
        await release(conn, conversation_id, transfer.from_specialist_id)
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
