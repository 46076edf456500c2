"""Turning a request into a conversation: a specialist accepts an offer, or claims a waiting
request by hand. One transaction each, compare-and-sets on the offer, the request and the
specialist's capacity, in the lock order of chat/store/queue.py (request, offers,
specialist), so two racing (two accepts, an accept and a claim) cannot both win: the loser
gets a typed `Refusal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from chat.store import boundaries, queue, transfer, transfer_reads
from chat.store.conversations import Conversation
from chat.store.db import Db
from chat.store.queue import PENDING, WARM_SLOTS, Offer, Request
from chat.store.states import OFFER_ACCEPTED, OFFER_REVOKED, REQUEST_ASSIGNED

_REQ = Request.columns()
_OFFER = Offer.columns()
_CONV = Conversation.columns()


class Refusal(StrEnum):
    OFFER_EXPIRED = "offer_expired"
    ALREADY_CLAIMED = "already_claimed"
    NO_SLOT = "no_slot"
    LANGUAGE = "language"
    NOT_FOUND = "not_found"
    BLOCKED = "blocked"  # a block or report bars this pair (PRODUCT.md §9)
    WRAP_UP = "wrap_up"
    HANDED_ON = "handed_on"  # a cold transfer's queue entry, claimed by the one who handed it on


@dataclass(frozen=True, slots=True)
class Assignment:
    conversation_id: str
    request: Request
    specialist_id: str
    specialist_name: str
    revoked: list[Offer]
    # A cold transfer's queue entry taken (PRODUCT.md §9): who handed it on and their note;
    # `conversation_id` is then the handed-on conversation, which kept its id and seq.
    handed_on: tuple[transfer.Transfer, str] | None = None
    # The conversation as stored, when the assignment just made it (one read fewer).
    conversation: Conversation | None = None


async def accept_offer(
    db: asyncpg.Pool[asyncpg.Record], offer_id: str, specialist_id: str
) -> Assignment | Refusal:
    try:
        async with db.acquire() as conn, conn.transaction():
            await queue.lock_request_of_offer(conn, offer_id)
            request_id = await conn.fetchval(
                f"""UPDATE offers SET state = {OFFER_ACCEPTED.to}, decided_at = now()
                    WHERE id = $1 AND specialist_id = $2 AND state IN {OFFER_ACCEPTED.from_}
                      AND expires_at > now()
                   RETURNING request_id""",
                offer_id,
                specialist_id,
            )
            if request_id is None:
                return Refusal.OFFER_EXPIRED
            # A refusal rolls the whole transaction back: the offer stays pending until it expires.
            # The accepted offer was the request's one pending offer (a unique index says so):
            # no other to withdraw.
            return await _assign(conn, request_id, specialist_id, check_language=False, by_offer=True)
    except _Abort as abort:
        return abort.refusal


class _Abort(Exception):
    """Raised inside a transaction to roll it back with a refusal for the caller."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


async def claim_request(
    db: asyncpg.Pool[asyncpg.Record], request_id: str, specialist_id: str
) -> Assignment | Refusal:
    try:
        async with db.acquire() as conn, conn.transaction():
            await queue.lock_request(conn, request_id)
            # In wrap-up after a conversation: no claims either (PRODUCT.md §8).
            if await conn.fetchval(
                "SELECT wrap_up_until > now() FROM specialists WHERE id = $1", specialist_id
            ):
                raise _Abort(Refusal.WRAP_UP)
            return await _assign(conn, request_id, specialist_id, check_language=True)
    except _Abort as abort:
        return abort.refusal


async def _assign(
    conn: Db, request_id: str, specialist_id: str, *, check_language: bool, by_offer: bool = False
) -> Assignment:
    # The caller holds the request row's lock (see queue.lock_request_of_offer). The capacity
    # check is a compare-and-set on the specialist row, so no process can overfill them.
    # The specialist's pending offers for other requests hold slots too (PRODUCT.md §7): a
    # claim may not take the slot an offer holds, or that offer could no longer be accepted
    # (issue 18). The row is locked first, so the count below sees every offer committed
    # before it (make_offer takes the same lock).
    await conn.execute("SELECT 1 FROM specialists WHERE id = $1 FOR UPDATE", specialist_id)
    spec = await conn.fetchrow(
        f"""UPDATE specialists s SET active_chats = active_chats + 1, missed_offers = 0, idle_since = now()
            WHERE id = $1 AND active_chats + (
                SELECT count(*) FROM offers o
                WHERE o.specialist_id = s.id AND o.state IN {PENDING} AND o.expires_at > now()
                  AND o.request_id <> $2) + {WARM_SLOTS} < max_chats
            RETURNING name, languages""",
        specialist_id,
        request_id,
    )
    if spec is None:
        exists = await conn.fetchval("SELECT 1 FROM specialists WHERE id = $1", specialist_id)
        raise _Abort(Refusal.NO_SLOT if exists else Refusal.NOT_FOUND)
    row = await conn.fetchrow(
        f"""UPDATE requests SET state = {REQUEST_ASSIGNED.to}, closed_at = now()
            WHERE id = $1 AND state IN {REQUEST_ASSIGNED.from_} RETURNING {_REQ}""",
        request_id,
    )
    if row is None:
        exists = await conn.fetchval("SELECT 1 FROM requests WHERE id = $1", request_id)
        raise _Abort(Refusal.ALREADY_CLAIMED if exists else Refusal.NOT_FOUND)
    request = Request.of(row)
    if await boundaries.is_barred(conn, request.member_id, specialist_id):
        raise _Abort(Refusal.BLOCKED)
    if check_language and request.language and request.language not in spec["languages"]:
        raise _Abort(Refusal.LANGUAGE)
    revoked = (
        []
        if by_offer
        else await conn.fetch(
            f"""UPDATE offers SET state = {OFFER_REVOKED.to}, decided_at = now()
                WHERE request_id = $1 AND state IN {OFFER_REVOKED.from_} RETURNING {_OFFER}""",
            request_id,
        )
    )
    if request.transfer_of is not None:
        # A cold transfer: the taker now holds the conversation that waits (its id and seq
        # kept). Never back to the one who handed it on, by offer (`avoid`) or by claim.
        handed_on = await transfer_reads.of_request(conn, request.id)
        if handed_on is not None and handed_on[0].from_specialist_id == specialist_id:
            raise _Abort(Refusal.HANDED_ON)
        taken = await transfer.take_queued(conn, request, specialist_id, spec["name"])
        if taken is None:
            raise _Abort(Refusal.ALREADY_CLAIMED)  # it ended meanwhile
        return Assignment(
            conversation_id=taken.id,
            request=request,
            specialist_id=specialist_id,
            specialist_name=spec["name"],
            revoked=[Offer.of(r) for r in revoked],
            handed_on=handed_on,
        )
    conversation_id = queue.new_id()
    conversation = await conn.fetchrow(
        f"""INSERT INTO conversations (id, request_id, member_id, member_alias, specialist_id,
               specialist_name, tags)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_CONV}""",
        conversation_id,
        request.id,
        request.member_id,
        request.member_alias,
        specialist_id,
        spec["name"],
        request.tags,
    )
    return Assignment(
        conversation_id=conversation_id,
        request=request,
        specialist_id=specialist_id,
        specialist_name=spec["name"],
        revoked=[Offer.of(r) for r in revoked],
        conversation=Conversation.of(conversation) if conversation is not None else None,
    )
