"""What the service asks about transfers without changing them (PRODUCT.md §9): who could
take a warm transfer now (the dialog's list), what is offered to a specialist, what is
overdue, a cold transfer's row by its queue entry, who handed a conversation on, and which
offers an end withdrew. The writes are chat/store/transfer_start.py and
transfer_warm.py, their compare-and-set rules chat/store/transfer.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chat.store import boundaries
from chat.store.conversations import Conversation
from chat.store.db import Db, FromRow
from chat.store.states import OFFER_REVOKED, TRANSFER_ACCEPTED, TRANSFER_OFFERED, TRANSFER_OPEN
from chat.store.transfer import Transfer, held_slots, note_body

_TRANSFER = Transfer.columns()


async def handed_on_by(db: Db, conversation_id: str, specialist_id: str) -> bool:
    """Whether the conversation ended for this specialist by their handing it on: a cold
    transfer (they lost it when it began) or an accepted warm one (PRODUCT.md §8: their
    wrap-up is theirs to record like any other end's)."""
    found = await db.fetchval(
        f"""SELECT 1 FROM transfers WHERE conversation_id = $1 AND from_specialist_id = $2
              AND (request_id IS NOT NULL OR state = {TRANSFER_ACCEPTED.to}) LIMIT 1""",
        conversation_id,
        specialist_id,
    )
    return found is not None


async def get(db: Db, transfer_id: str) -> Transfer | None:
    row = await db.fetchrow(f"SELECT {_TRANSFER} FROM transfers WHERE id = $1", transfer_id)
    return Transfer.of(row) if row is not None else None


async def offered_to(db: Db, specialist_id: str) -> list[Transfer]:
    rows = await db.fetch(
        f"""SELECT {_TRANSFER} FROM transfers
            WHERE to_specialist_id = $1 AND state = {TRANSFER_OFFERED} AND expires_at > now()
            ORDER BY created_at""",
        specialist_id,
    )
    return [Transfer.of(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Open:
    """A transfer under way, as the people around it are shown it: warm (`to_specialist_id`
    and their name, until `expires_at`) or cold (waiting in the queue)."""

    conversation_id: str
    to_specialist_id: str | None
    to_name: str | None
    expires_at: datetime | None


async def open_of(db: Db, conversation_ids: list[str]) -> dict[str, Open]:
    """The open transfer (at most one: a partial unique index) of each of these conversations."""
    if not conversation_ids:
        return {}
    rows = await db.fetch(
        f"""SELECT t.conversation_id, t.to_specialist_id, s.name AS to_name, t.expires_at
              FROM transfers t LEFT JOIN specialists s ON s.id = t.to_specialist_id
             WHERE t.conversation_id = ANY($1::text[]) AND t.state IN {TRANSFER_OPEN}""",
        conversation_ids,
    )
    return {r["conversation_id"]: Open(**dict(r)) for r in rows}


async def overdue(db: Db) -> list[Transfer]:
    """Warm transfers whose offer timed out but are still marked offered."""
    rows = await db.fetch(
        f"SELECT {_TRANSFER} FROM transfers WHERE state = {TRANSFER_OFFERED} AND expires_at <= now()"
    )
    return [Transfer.of(r) for r in rows]


async def of_request(db: Db, request_id: str) -> tuple[Transfer, str] | None:
    """A cold transfer's row and its note, by its queue entry."""
    row = await db.fetchrow(f"SELECT {_TRANSFER} FROM transfers WHERE request_id = $1", request_id)
    if row is None:
        return None
    transfer = Transfer.of(row)
    return transfer, await note_body(db, transfer.note_id)


async def note_of(db: Db, transfer: Transfer) -> str:
    return await note_body(db, transfer.note_id)


@dataclass(frozen=True, slots=True)
class Target(FromRow):
    """A specialist who could take a warm transfer now (the transfer dialog)."""

    id: str
    name: str
    languages: list[str]
    tags: list[str]
    active_chats: int
    max_chats: int
    status: str


_TARGET = ", ".join(f"s.{name}" for name in Target._names())


async def targets(db: Db, conv: Conversation, caller_id: str, online: set[str]) -> list[Target]:
    """Who `transfer` with `to_specialist` would accept for `conv` now: online (`online`),
    not the caller nor its holder, speaking its language, with a free slot, not in wrap-up,
    not barred from its member; most shared tags first, then fewest chats."""
    language = await db.fetchval(
        "SELECT r.language FROM conversations c JOIN requests r ON r.id = c.request_id WHERE c.id = $1",
        conv.id,
    )
    rows = await db.fetch(
        f"""SELECT {_TARGET} FROM specialists s
            WHERE s.id = ANY($1::text[]) AND s.id <> $2 AND s.id <> $3
              AND ($4::text IS NULL OR $4 = ANY(s.languages))
              AND COALESCE(s.wrap_up_until <= now(), true)
              AND ({held_slots()}) < s.max_chats
              AND s.id <> ALL({boundaries.BARRED_FOR.format(m="$5")})
            ORDER BY cardinality(ARRAY(SELECT unnest(s.tags) INTERSECT SELECT unnest($6::text[]))) DESC,
                     s.active_chats, s.name, s.id""",
        sorted(online),
        caller_id,
        conv.specialist_id,
        language,
        conv.member_id,
        conv.tags,
    )
    return [Target.of(r) for r in rows]


async def withdrawn_by_end(db: Db, conversation_id: str) -> list[tuple[str | None, str]]:
    """(specialist, offer id) of the offers the conversation's end withdrew: a warm
    transfer's, and those of a cold one's queue entry (decided in the ending transaction,
    so at the very `ended_at`); and (None, transfer id) for a cold transfer it cancelled.
    Empty: the end cancelled no transfer."""
    rows = await db.fetch(
        f"""SELECT t.to_specialist_id AS specialist_id, t.id AS offer_id
              FROM transfers t JOIN conversations c ON c.id = t.conversation_id
             WHERE t.conversation_id = $1 AND t.state = 'cancelled' AND t.decided_at = c.ended_at
            UNION ALL
            SELECT o.specialist_id, o.id
              FROM transfers t JOIN conversations c ON c.id = t.conversation_id
              JOIN offers o ON o.request_id = t.request_id
             WHERE t.conversation_id = $1 AND t.request_id IS NOT NULL
               AND o.state = {OFFER_REVOKED.to} AND o.decided_at = c.ended_at""",
        conversation_id,
    )
    return [(r["specialist_id"], r["offer_id"]) for r in rows]
