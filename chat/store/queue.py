"""Requests waiting for a peer: their rows (and their offers' rows), creating and
cancelling one, the locks every queue write takes, and the reads of the line. Making,
declining, expiring and revoking offers is chat/store/offers.py; turning a request into a
conversation, by accept or claim, is chat/store/assignment.py.

Every function that changes state is a compare-and-set on the row's current state inside
one transaction, so two processes racing (two accepts, an accept and a claim, a claim and
a cancel) cannot both win: the loser sees `None` or a typed refusal.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict, Unpack

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chat.store import boundaries
from chat.store.db import Db, FromRow, Reused
from chat.store.states import (
    CONVERSATION_ACTIVE,
    OFFER_REVOKED,
    REQUEST_CANCELLED,
    open_states,
)
from matching.lifecycle import OFFER_TRANSITIONS, REQUEST_TRANSITIONS, OfferState, RequestState
from protocol.ids import OfferId, RequestId, UserId

# A pending warm transfer holds one of its target's slots, as an offer does (PRODUCT.md §7, §9).
WARM_SLOTS = """(SELECT count(*) FROM transfers t
                 WHERE t.to_specialist_id = s.id AND t.state = 'offered' AND t.expires_at > now())"""

IN_LINE = open_states(REQUEST_TRANSITIONS, RequestState)  # waiting or offered
PENDING = open_states(OFFER_TRANSITIONS, OfferState)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Request(FromRow):
    id: RequestId
    member_id: UserId
    member_alias: str
    tags: list[str]
    language: str | None
    note: str | None
    priority: str
    prefer_specialist: str | None
    avoid: list[str]
    state: str
    created_at: datetime
    # A cold transfer's queue entry: the conversation it hands on (chat/store/transfer_start.py).
    transfer_of: str | None = None


@dataclass(frozen=True, slots=True)
class Offer(FromRow):
    id: OfferId
    request_id: RequestId
    specialist_id: UserId
    state: str
    created_at: datetime
    expires_at: datetime


_REQ = Request.columns()
_OFFER = Offer.columns()


class AlreadyOpen(Exception):
    """The member already has an open request or an active conversation."""


class Suspended(Exception):
    """The member is suspended (PRODUCT.md §9): nothing was stored."""

    def __init__(self, suspension: boundaries.Suspension) -> None:
        self.suspension = suspension


class NewRequest(TypedDict):
    """What a member asks for (`create_placed_request`'s fields)."""

    member_id: str
    member_alias: str
    tags: list[str]
    language: str | None
    note: str | None
    priority: str
    prefer_specialist: str | None


async def create_request(db: Db, **fields: Unpack[NewRequest]) -> Request:
    """`create_placed_request` without the place in line."""
    request, _ = await create_placed_request(db, **fields)
    return request


async def create_placed_request(
    db: Db,
    *,
    member_id: str,
    member_alias: str,
    tags: list[str],
    language: str | None,
    note: str | None,
    priority: str,
    prefer_specialist: str | None,
    unless_suspended: bool = False,
) -> tuple[Request, int]:
    """Store a member's request; with it, how many requests are in line before it (as
    `ahead_of` counts). Four round trips: the member's lock, then one statement that checks
    they are not in a conversation (nor suspended, if asked: raises `Suspended`), inserts,
    and counts (it was seven, with the suspension and `ahead_of`)."""
    async with connection(db) as conn, conn.transaction():
        # Not while the member is being erased: the erasure would find no open request,
        # then scrub this one's member id and leave it waiting (chat/store/privacy.py).
        await lock_member(conn, member_id)
        try:
            row = await conn.fetchrow(
                f"""WITH new AS (
                        INSERT INTO requests (id, member_id, member_alias, tags, language, note,
                            priority, prefer_specialist, avoid)
                        SELECT $1, $2, $3, $4, $5, $6, $7, $8, {boundaries.BARRED_FOR.format(m="$2")}
                        WHERE NOT EXISTS (
                            SELECT 1 FROM conversations
                            WHERE member_id = $2 AND state = {CONVERSATION_ACTIVE})
                          AND NOT ($9 AND EXISTS (
                            SELECT 1 FROM suspensions
                            WHERE member_id = $2 AND lifted_at IS NULL AND until > now()))
                        RETURNING {_REQ}
                    )
                    SELECT new.*, (
                        SELECT count(*) FROM requests r WHERE r.state IN {IN_LINE} AND r.id <> new.id
                          AND (r.priority = 'urgent' AND new.priority = 'normal'
                               OR r.priority = new.priority AND r.transfer_of IS NOT NULL
                                  AND new.transfer_of IS NULL
                               OR r.priority = new.priority
                                  AND (r.transfer_of IS NOT NULL) = (new.transfer_of IS NOT NULL)
                                  AND (r.created_at, r.id) < (new.created_at, new.id))
                    ) AS ahead
                    FROM new""",
                new_id(),
                member_id,
                member_alias,
                tags,
                language,
                note,
                priority,
                prefer_specialist,
                unless_suspended,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyOpen from None
        if row is None:  # suspended, or in a conversation
            suspension = await boundaries.suspension_of(conn, member_id) if unless_suspended else None
            if suspension is not None:
                raise Suspended(suspension)
            raise AlreadyOpen
    return Request.of(row), int(row["ahead"])


@contextlib.asynccontextmanager
async def connection(
    db: Db,
) -> AsyncIterator[asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]]:
    """A connection of the pool, or the connection given (a handler that does several
    things on one, so it waits for the pool once: a burst queues thousands for it)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


# Advisory lock class of "a member's requests" (the two-key form: it never meets the
# single-key locks of the matchmaker, the retention sweep or migrations).
MEMBER_LOCK_CLASS = 1_700_017


async def lock_member(conn: Db, member_id: str) -> None:
    """Serialise, until the transaction ends, a member's new requests with their erasure."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", MEMBER_LOCK_CLASS, member_id)


async def lock_request_of_offer(conn: Db, offer_id: str) -> str | None:
    """Lock order everywhere: request row, then offer rows, then the specialist row.
    Taking the request first (by way of the offer's request id, read without a lock)
    is what keeps accept, claim, decline and expiry from deadlocking one another. One round
    trip: the join locks only the request row (`FOR UPDATE OF r`)."""
    request_id: str | None = await conn.fetchval(
        """SELECT r.id FROM offers o JOIN requests r ON r.id = o.request_id
            WHERE o.id = $1 FOR UPDATE OF r""",
        offer_id,
    )
    return request_id


async def lock_request(conn: Db, request_id: str) -> None:
    await conn.execute("SELECT 1 FROM requests WHERE id = $1 FOR UPDATE", request_id)


async def open_request_of(db: Db, member_id: str) -> Request | None:
    row = await db.fetchrow(
        f"SELECT {_REQ} FROM requests WHERE member_id = $1 AND state IN {IN_LINE}", member_id
    )
    return Request.of(row) if row else None


async def get_request(db: Db, request_id: str) -> Request | None:
    row = await db.fetchrow(f"SELECT {_REQ} FROM requests WHERE id = $1", request_id)
    return Request.of(row) if row else None


async def open_requests(db: Db, reuse: Reused[Request] | None = None) -> list[Request]:
    """Waiting and offered requests, in queue order: urgent first, transfers first within
    a priority (PRODUCT.md §9), then longest waiting (`matching.model.queue_key`). With
    `reuse`, last time's instance for a row unchanged since."""
    rows = await db.fetch(
        f"""SELECT {_REQ} FROM requests WHERE state IN {IN_LINE}
            ORDER BY priority = 'urgent' DESC, transfer_of IS NULL, created_at, id"""
    )
    return reuse.of(rows) if reuse is not None else [Request.of(r) for r in rows]


async def cancel_request(
    db: asyncpg.Pool[asyncpg.Record], request_id: str, member_id: str
) -> list[Offer] | None:
    """Cancel the member's own open request; returns the offers withdrawn, or None if it
    was not theirs, no longer open, or a cold transfer's entry (ended with its conversation)."""
    async with db.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            f"""UPDATE requests SET state = {REQUEST_CANCELLED.to}, closed_at = now()
                WHERE id = $1 AND member_id = $2 AND state IN {REQUEST_CANCELLED.from_}
                  AND transfer_of IS NULL RETURNING id""",
            request_id,
            member_id,
        )
        if done is None:
            return None
        rows = await conn.fetch(
            f"""UPDATE offers SET state = {OFFER_REVOKED.to}, decided_at = now()
                WHERE request_id = $1 AND state IN {OFFER_REVOKED.from_} RETURNING {_OFFER}""",
            request_id,
        )
    return [Offer.of(r) for r in rows]


async def pending_offers(db: Db, specialist_id: str | None = None) -> list[Offer]:
    if specialist_id is None:
        rows = await db.fetch(f"SELECT {_OFFER} FROM offers WHERE state IN {PENDING}")
    else:
        rows = await db.fetch(
            f"""SELECT {_OFFER} FROM offers WHERE state IN {PENDING} AND specialist_id = $1
                ORDER BY created_at""",
            specialist_id,
        )
    return [Offer.of(r) for r in rows]


async def ahead_of(db: Db, request: Request) -> int:
    """Requests in line before this one: urgent before normal, transfers first within a
    priority, then oldest first."""
    ahead = await db.fetchval(
        f"""SELECT count(*) FROM requests WHERE state IN {IN_LINE} AND id <> $1
             AND (priority = 'urgent' AND $2 = 'normal'
                  OR priority = $2 AND transfer_of IS NOT NULL AND NOT $4
                  OR priority = $2 AND (transfer_of IS NOT NULL) = $4 AND (created_at, id) < ($3, $1))""",
        request.id,
        request.priority,
        request.created_at,
        request.transfer_of is not None,
    )
    return int(ahead or 0)
