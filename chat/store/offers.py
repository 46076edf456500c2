"""Offers of waiting requests to specialists (PRODUCT.md §7): making them in batches with
the slot check, and declining, expiring or revoking a pending one. The requests and their
rows are chat/store/queue.py; accepting an offer is chat/store/assignment.py.

Every write is a compare-and-set on the row's current state inside one transaction, under
the lock order of `queue.lock_request_of_offer`, so racing processes cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from chat.store.queue import PENDING, WARM_SLOTS, Offer, lock_request_of_offer
from chat.store.states import OFFER_REVOKED, REQUEST_BACK_IN_LINE, REQUEST_OFFERED

_OFFER = Offer.columns()


@dataclass(frozen=True, slots=True)
class NewOffer:
    """An offer the matchmaker decided, to be written (`make_offers`)."""

    offer_id: str
    request_id: str
    specialist_id: str
    expires_at: datetime


async def make_offer(
    db: asyncpg.Pool[asyncpg.Record],
    *,
    offer_id: str,
    request_id: str,
    specialist_id: str,
    expires_at: datetime,
) -> Offer | None:
    """One offer (`make_offers`); None if it was refused."""
    made = await make_offers(db, [NewOffer(offer_id, request_id, specialist_id, expires_at)])
    return made[0] if made else None


async def make_offers(db: asyncpg.Pool[asyncpg.Record], wanted: Sequence[NewOffer]) -> list[Offer]:
    """Offer waiting requests to specialists, all in one transaction of four statements
    whatever their number; returns the offers made. One is refused (left out) if its request
    is no longer waiting or avoids that specialist, or the specialist has no free slot:
    active chats plus pending offers (and warm transfers) already reach `max_chats`, counting
    the batch's own offers before it. The partial unique index on pending offers per request
    is the last word.

    The slot check is here, not only in the engine, because the engine decides on a snapshot
    that can be a moment old; an offer the specialist could not accept is worse than none
    (issue 18: 138 `invalid_state` answers to `accept` while 2,000 members were matched).
    One transaction per offer (six round trips each) made a burst of 2,000 wait on the
    round trips (issue 20)."""
    by_request: dict[str, NewOffer] = {}
    for w in wanted:
        by_request.setdefault(w.request_id, w)  # one offer per request, the first
    if not by_request:
        return []
    async with db.acquire() as conn, conn.transaction():
        moved = {
            r["id"]
            for r in await conn.fetch(
                f"""UPDATE requests r SET state = {REQUEST_OFFERED.to}
                    FROM unnest($1::text[], $2::text[]) AS w(request_id, specialist_id)
                    WHERE r.id = w.request_id AND r.state IN {REQUEST_OFFERED.from_}
                      AND NOT (w.specialist_id = ANY(r.avoid))
                    RETURNING r.id""",
                list(by_request),
                [w.specialist_id for w in by_request.values()],
            )
        }
        todo = [w for w in by_request.values() if w.request_id in moved]
        if not todo:
            return []
        # Lock order: the requests (above), then the specialist rows (sorted, so two batches
        # cannot deadlock), as in accept and claim; the row locks serialise offers to one
        # specialist from two leaders. The count is its own statement so that its snapshot
        # is taken after the locks are held.
        await conn.execute(
            "SELECT 1 FROM specialists WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
            sorted({w.specialist_id for w in todo}),
        )
        try:
            rows = await conn.fetch(
                f"""WITH w AS (
                        SELECT *, row_number() OVER (PARTITION BY specialist_id ORDER BY n) AS k
                        FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                             WITH ORDINALITY AS w(id, request_id, specialist_id, expires_at, n)
                    ), room AS (
                        SELECT s.id, s.max_chats - s.active_chats - (
                                   SELECT count(*) FROM offers o
                                   WHERE o.specialist_id = s.id AND o.state IN {PENDING}
                                     AND o.expires_at > now())
                                   - {WARM_SLOTS} AS free
                        FROM specialists s WHERE s.id = ANY($3::text[])
                    )
                    INSERT INTO offers (id, request_id, specialist_id, expires_at)
                    SELECT w.id, w.request_id, w.specialist_id, w.expires_at
                    FROM w JOIN room ON room.id = w.specialist_id
                    WHERE w.k <= room.free
                    ORDER BY w.n
                    RETURNING {_OFFER}""",
                [w.offer_id for w in todo],
                [w.request_id for w in todo],
                [w.specialist_id for w in todo],
                [w.expires_at for w in todo],
            )
        except asyncpg.UniqueViolationError:
            raise AssertionError("request was waiting yet had a pending offer") from None
        made = [Offer.of(r) for r in rows]
        if len(made) < len(todo):
            # No slot for these: their requests are still waiting, as if never moved.
            back = sorted(moved - {o.request_id for o in made})
            await conn.execute(
                f"""UPDATE requests SET state = {REQUEST_BACK_IN_LINE.to}
                    WHERE id = ANY($1::text[]) AND state IN {REQUEST_BACK_IN_LINE.from_}""",
                back,
            )
    order = {w.offer_id: i for i, w in enumerate(todo)}
    made.sort(key=lambda o: order[o.id])
    return made


class OfferOutcome(StrEnum):
    DECLINED = "declined"
    EXPIRED = "expired"


async def close_offer(
    db: asyncpg.Pool[asyncpg.Record], offer_id: str, outcome: OfferOutcome, specialist_id: str | None = None
) -> tuple[Offer, int] | None:
    """Decline or expire a pending offer: the request goes back to waiting, keeps its place
    (created_at is untouched) and is never offered to this specialist again. Returns the
    offer and the specialist's count of offers missed in a row, or None if it was not pending."""
    async with db.acquire() as conn, conn.transaction():
        await lock_request_of_offer(conn, offer_id)
        row = await conn.fetchrow(
            f"""UPDATE offers SET state = $2, decided_at = now()
                WHERE id = $1 AND state IN {PENDING} AND ($3::text IS NULL OR specialist_id = $3)
                RETURNING {_OFFER}""",
            offer_id,
            outcome.value,
            specialist_id,
        )
        if row is None:
            return None
        offer = Offer.of(row)
        await conn.execute(
            f"""UPDATE requests SET state = {REQUEST_BACK_IN_LINE.to}, avoid = array_append(avoid, $2)
                WHERE id = $1 AND state IN {REQUEST_BACK_IN_LINE.from_}""",
            offer.request_id,
            offer.specialist_id,
        )
        missed = await conn.fetchval(
            """UPDATE specialists SET missed_offers = CASE WHEN $2 THEN missed_offers + 1 ELSE 0 END
               WHERE id = $1 RETURNING missed_offers""",
            offer.specialist_id,
            outcome is OfferOutcome.EXPIRED,
        )
    return offer, int(missed or 0)


async def revoke_offer(db: asyncpg.Pool[asyncpg.Record], offer_id: str) -> bool:
    """Withdraw a pending offer without holding it against the specialist (they went away,
    or their capacity was cut); the request goes back to waiting."""
    async with db.acquire() as conn, conn.transaction():
        await lock_request_of_offer(conn, offer_id)
        request_id = await conn.fetchval(
            f"""UPDATE offers SET state = {OFFER_REVOKED.to}, decided_at = now()
                WHERE id = $1 AND state IN {OFFER_REVOKED.from_} RETURNING request_id""",
            offer_id,
        )
        if request_id is None:
            return False
        await conn.execute(
            f"""UPDATE requests SET state = {REQUEST_BACK_IN_LINE.to}
                WHERE id = $1 AND state IN {REQUEST_BACK_IN_LINE.from_}""",
            request_id,
        )
    return True
