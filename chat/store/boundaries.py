"""Blocks, reports and suspensions (PRODUCT.md §9): the boundaries between a member and a
specialist, and a member's suspension.

A pair is *barred* while a block of it is in force (not lifted, `until` ahead) or once the
member reported the specialist. A barred specialist is in the `avoid` set of the member's
open request (written when the request is made, and when a block or report lands while a
request is open, under the request row's lock), so the pure engine never offers it; the
assignment itself checks the bar again (`is_barred`), so no claim, accept or transfer
slips past one. A bar that lands while the barred specialist holds a pending offer for
the member's open request withdraws that offer in the same transaction (the caller tells
the holder `offer_revoked`), so the request moves on to the next candidate at once instead
of waiting out an offer that could never be accepted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from chat.store.db import Db, FromRow
from chat.store.states import OFFER_REVOKED, REQUEST_BACK_IN_LINE, TRANSFER_OFFERED, open_states
from matching.lifecycle import REQUEST_TRANSITIONS, RequestState

REQUEST_IN_LINE = open_states(REQUEST_TRANSITIONS, RequestState)  # waiting or offered

# The specialists barred for member $1 (blocks in force, reports), as one text[].
BARRED_FOR = """ARRAY(SELECT specialist_id FROM blocks
                       WHERE member_id = {m} AND lifted_at IS NULL AND until > now()
                      UNION
                      SELECT specialist_id FROM reports WHERE member_id = {m})"""


@dataclass(frozen=True, slots=True)
class Block(FromRow):
    id: str
    conversation_id: str
    member_id: str
    specialist_id: str
    reason: str | None
    at: datetime
    until: datetime
    lifted_at: datetime | None


@dataclass(frozen=True, slots=True)
class Report(FromRow):
    id: str
    conversation_id: str
    member_id: str
    specialist_id: str
    reason: str | None
    details: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Suspension(FromRow):
    id: str
    member_id: str
    until: datetime
    reason: str | None
    at: datetime
    lifted_at: datetime | None


_BLOCK = Block.columns()
_REPORT = Report.columns()
_SUSPENSION = Suspension.columns()


async def is_barred(db: Db, member_id: str, specialist_id: str) -> bool:
    found = await db.fetchval(
        """SELECT 1 FROM blocks WHERE member_id = $1 AND specialist_id = $2
                                  AND lifted_at IS NULL AND until > now()
           UNION ALL
           SELECT 1 FROM reports WHERE member_id = $1 AND specialist_id = $2
           LIMIT 1""",
        member_id,
        specialist_id,
    )
    return bool(found)


async def _bar_open_request(conn: Db, member_id: str, specialist_id: str) -> list[str]:
    """Add the specialist to the `avoid` of the member's open request (if any; the caller
    holds its row lock) and withdraw any pending offer of it that they hold; returns the
    ids of the offers withdrawn."""
    await conn.execute(
        f"""UPDATE requests SET avoid = array_append(avoid, $2)
            WHERE member_id = $1 AND state IN {REQUEST_IN_LINE} AND NOT ($2 = ANY(avoid))""",
        member_id,
        specialist_id,
    )
    rows = await conn.fetch(
        f"""UPDATE offers SET state = {OFFER_REVOKED.to}, decided_at = now()
            WHERE specialist_id = $2 AND state IN {OFFER_REVOKED.from_}
              AND request_id IN (SELECT id FROM requests WHERE member_id = $1 AND state IN {REQUEST_IN_LINE})
            RETURNING id, request_id""",
        member_id,
        specialist_id,
    )
    if rows:
        # One offer per request at a time: the request is back in line for the next candidate.
        await conn.execute(
            f"""UPDATE requests SET state = {REQUEST_BACK_IN_LINE.to}
                WHERE id = ANY($1::text[]) AND state IN {REQUEST_BACK_IN_LINE.from_}""",
            [r["request_id"] for r in rows],
        )
    return [str(r["id"]) for r in rows]


async def add_block(
    db: asyncpg.Pool[asyncpg.Record],
    *,
    conversation_id: str,
    member_id: str,
    specialist_id: str,
    reason: str | None,
    days: float,
) -> tuple[Block, list[str]] | None:
    """A new block in force for `days`, and the ids of the pending offers it withdrew (the
    caller tells their holder); None if this conversation's block is already in force."""
    async with db.acquire() as conn, conn.transaction():
        # Lock order as everywhere: the request row first (a claim holds it while it checks the bar).
        await conn.execute(
            f"SELECT 1 FROM requests WHERE member_id = $1 AND state IN {REQUEST_IN_LINE} FOR UPDATE",
            member_id,
        )
        # An expired block of this conversation no longer counts: close it so a new one may start.
        await conn.execute(
            """UPDATE blocks SET lifted_at = until
               WHERE conversation_id = $1 AND lifted_at IS NULL AND until <= now()""",
            conversation_id,
        )
        try:
            row = await conn.fetchrow(
                f"""INSERT INTO blocks (id, conversation_id, member_id, specialist_id, reason, until)
                    VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING {_BLOCK}""",
                uuid.uuid4().hex,
                conversation_id,
                member_id,
                specialist_id,
                reason,
                days * 86400.0,
            )
        except asyncpg.UniqueViolationError:
            return None
        withdrawn = await _bar_open_request(conn, member_id, specialist_id)
    assert row is not None
    return Block.of(row), withdrawn


async def blocks_in_force(db: Db, limit: int = 500) -> list[Block]:
    rows = await db.fetch(
        f"""SELECT {_BLOCK} FROM blocks WHERE lifted_at IS NULL AND until > now()
            ORDER BY at DESC, id LIMIT $1""",
        limit,
    )
    return [Block.of(r) for r in rows]


async def lift_block(db: Db, block_id: str, by: str) -> Block | None:
    """Lift a block in force; None if there is none by that id."""
    row = await db.fetchrow(
        f"""UPDATE blocks SET lifted_at = now(), lifted_by = $2
            WHERE id = $1 AND lifted_at IS NULL AND until > now() RETURNING {_BLOCK}""",
        block_id,
        by,
    )
    return Block.of(row) if row else None


async def add_report(
    db: asyncpg.Pool[asyncpg.Record],
    *,
    conversation_id: str,
    member_id: str,
    specialist_id: str,
    reason: str | None,
    details: str | None,
) -> tuple[Report, list[str]] | None:
    """A new report, and the ids of the pending offers it withdrew (the caller tells their
    holder); None if this conversation was reported already."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            f"SELECT 1 FROM requests WHERE member_id = $1 AND state IN {REQUEST_IN_LINE} FOR UPDATE",
            member_id,
        )
        try:
            row = await conn.fetchrow(
                f"""INSERT INTO reports (id, conversation_id, member_id, specialist_id, reason, details)
                    VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_REPORT}""",
                uuid.uuid4().hex,
                conversation_id,
                member_id,
                specialist_id,
                reason,
                details,
            )
        except asyncpg.UniqueViolationError:
            return None
        withdrawn = await _bar_open_request(conn, member_id, specialist_id)
    assert row is not None
    return Report.of(row), withdrawn


async def reported_specialist(db: Db, conversation_id: str, specialist_id: str) -> str:
    """Whom a member's report of this conversation is about: its specialist, or, while a
    cold transfer waits and nobody holds it (specialist_id ''), the one who handed it on."""
    if specialist_id:
        return specialist_id
    handed_on = await db.fetchval(
        """SELECT from_specialist_id FROM transfers WHERE conversation_id = $1
           ORDER BY created_at DESC, id LIMIT 1""",
        conversation_id,
    )
    return str(handed_on or "")


async def warm_transfers_to(db: Db, member_id: str, specialist_id: str) -> list[str]:
    """The warm transfers of the member's conversations still offered to this specialist
    (chat/store/transfer_warm.py): a bar that lands now withdraws them too."""
    rows = await db.fetch(
        f"""SELECT t.id FROM transfers t JOIN conversations c ON c.id = t.conversation_id
            WHERE c.member_id = $1 AND t.to_specialist_id = $2 AND t.state = {TRANSFER_OFFERED}""",
        member_id,
        specialist_id,
    )
    return [str(r["id"]) for r in rows]


async def all_reports(db: Db, limit: int = 500) -> list[Report]:
    rows = await db.fetch(f"SELECT {_REPORT} FROM reports ORDER BY at DESC, id LIMIT $1", limit)
    return [Report.of(r) for r in rows]


async def suspend(
    db: asyncpg.Pool[asyncpg.Record], member_id: str, until: datetime, reason: str | None
) -> Suspension:
    """Suspend the member until `until`, replacing any suspension of theirs."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE suspensions SET lifted_at = now() WHERE member_id = $1 AND lifted_at IS NULL", member_id
        )
        row = await conn.fetchrow(
            f"""INSERT INTO suspensions (id, member_id, until, reason) VALUES ($1, $2, $3, $4)
                RETURNING {_SUSPENSION}""",
            uuid.uuid4().hex,
            member_id,
            until,
            reason,
        )
    assert row is not None
    return Suspension.of(row)


async def lift_suspension(db: Db, member_id: str) -> Suspension | None:
    """Lift the member's suspension in force; None if there is none."""
    row = await db.fetchrow(
        f"""UPDATE suspensions SET lifted_at = now()
            WHERE member_id = $1 AND lifted_at IS NULL AND until > now() RETURNING {_SUSPENSION}""",
        member_id,
    )
    return Suspension.of(row) if row else None


async def suspension_of(db: Db, member_id: str) -> Suspension | None:
    """The member's suspension in force, if any."""
    row = await db.fetchrow(
        f"""SELECT {_SUSPENSION} FROM suspensions
            WHERE member_id = $1 AND lifted_at IS NULL AND until > now()""",
        member_id,
    )
    return Suspension.of(row) if row else None
