"""What issue 18 stores for members and their peers: read positions, past peers, and the
requests of members who left (PRODUCT.md §5 v1.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from chat.store.db import Db, FromRow
from chat.store.queue import IN_LINE, Offer
from chat.store.states import CONVERSATION_ACTIVE, OFFER_REVOKED, REQUEST_CANCELLED

ABANDONED = "abandoned"
_OFFER = Offer.columns()


async def mark_read(db: Db, conversation_id: str, role: str, sub: str, seq: int) -> tuple[int, str] | None:
    """Record that (role, sub) has read up to `seq` (never backwards, never past the last
    message); returns the stored position and the peer's sub, or None if the conversation
    does not name them (any more: an erasure blanks the member's id)."""
    row = await db.fetchrow(
        """WITH c AS (
               SELECT id, last_seq, member_id, specialist_id FROM conversations
                WHERE id = $1 AND (CASE WHEN $2 = 'member' THEN member_id ELSE specialist_id END) = $4),
           r AS (
               INSERT INTO read_receipts AS r (conversation_id, role, seq)
               SELECT c.id, $2, LEAST($3, c.last_seq) FROM c
               ON CONFLICT (conversation_id, role) DO UPDATE SET seq = GREATEST(r.seq, EXCLUDED.seq)
               RETURNING seq)
           SELECT r.seq, CASE WHEN $2 = 'member' THEN c.specialist_id ELSE c.member_id END AS peer
             FROM r, c""",
        conversation_id,
        role,
        seq,
        sub,
    )
    return None if row is None else (int(row["seq"]), str(row["peer"]))


async def read_positions(db: Db, conversation_ids: list[str], role: str) -> dict[str, int]:
    """conversation id → how far `role` has read (conversations with no receipt are left out)."""
    rows = await db.fetch(
        """SELECT conversation_id, seq FROM read_receipts
           WHERE conversation_id = ANY($1::text[]) AND role = $2""",
        conversation_ids,
        role,
    )
    return {r["conversation_id"]: r["seq"] for r in rows}


@dataclass(frozen=True, slots=True)
class PastPeer(FromRow):
    id: str
    name: str
    last_at: datetime


async def past_peers(db: Db, member_id: str, *, within_days: float, limit: int = 20) -> list[PastPeer]:
    """The specialists this member talked with in the last `within_days`, most recent first,
    under their current profile name."""
    rows = await db.fetch(
        """SELECT c.specialist_id AS id,
                  coalesce(max(s.name), max(c.specialist_name)) AS name,
                  max(coalesce(c.ended_at, c.started_at)) AS last_at
           FROM conversations c LEFT JOIN specialists s ON s.id = c.specialist_id
           WHERE c.member_id = $1 AND c.started_at > now() - make_interval(days => $2)
           GROUP BY c.specialist_id
           ORDER BY last_at DESC, id
           LIMIT $3""",
        member_id,
        int(within_days),
        limit,
    )
    return [PastPeer.of(r) for r in rows]


async def abandon_request(db: asyncpg.Pool[asyncpg.Record], request_id: str) -> list[Offer] | None:
    """Cancel an open request whose member left (reason `abandoned`, to be told on their next
    connection); returns the offers withdrawn, or None if it was no longer open."""
    async with db.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            f"""UPDATE requests SET state = {REQUEST_CANCELLED.to}, closed_at = now(),
                       cancel_reason = '{ABANDONED}', reason_untold = true
                WHERE id = $1 AND state IN {REQUEST_CANCELLED.from_} RETURNING id""",
            request_id,
        )
        if done is None:
            return None
        rows = await conn.fetch(
            f"""UPDATE offers SET state = {OFFER_REVOKED.to}, decided_at = now()
                WHERE request_id = $1 AND state IN {OFFER_REVOKED.from_} RETURNING {_OFFER}""",
            request_id,
        )
    return [Offer.of(r) for r in rows]


async def take_untold_cancellations(db: Db, member_id: str) -> list[tuple[str, str]]:
    """(request id, reason) of this member's requests cancelled while they were away, each
    returned once: the caller must tell the member."""
    rows = await db.fetch(
        """UPDATE requests SET reason_untold = false WHERE member_id = $1 AND reason_untold
           RETURNING id, cancel_reason, closed_at""",
        member_id,
    )
    return [(r["id"], r["cancel_reason"]) for r in sorted(rows, key=lambda r: r["closed_at"])]


# --------------------------------------------------------------------------- members away


@dataclass(frozen=True, slots=True)
class Stake:
    """What a member would lose by leaving: their open requests and active conversations
    (conversation id, specialist id)."""

    requests: list[str]
    conversations: list[tuple[str, str]]


async def members_at_stake(db: Db) -> dict[str, Stake]:
    found: dict[str, Stake] = {}
    # A cold transfer's queue entry is not the member's request but their conversation's
    # (PRODUCT.md §9): it goes when that conversation ends `peer_gone`, and is never told
    # as a `cancelled abandoned` of a request they never made (docs/decisions.md).
    for row in await db.fetch(
        f"SELECT member_id, id FROM requests WHERE state IN {IN_LINE} AND transfer_of IS NULL"
    ):
        found.setdefault(row["member_id"], Stake([], [])).requests.append(row["id"])
    for row in await db.fetch(
        f"SELECT member_id, id, specialist_id FROM conversations WHERE state = {CONVERSATION_ACTIVE}"
    ):
        found.setdefault(row["member_id"], Stake([], [])).conversations.append(
            (row["id"], row["specialist_id"])
        )
    return found


async def member_left(db: Db, member_id: str) -> None:
    """The member's last live socket closed: their grace starts now (unless it already had)."""
    await db.execute("INSERT INTO members_away (member_id) VALUES ($1) ON CONFLICT DO NOTHING", member_id)


async def member_returned(db: Db, member_id: str) -> None:
    await db.execute("DELETE FROM members_away WHERE member_id = $1", member_id)


async def mark_away(db: Db, member_ids: list[str]) -> set[str]:
    """Record members found with no live lease (their process died); returns those this call
    marked (the others were already away)."""
    rows = await db.fetch(
        """INSERT INTO members_away (member_id) SELECT unnest($1::text[])
           ON CONFLICT DO NOTHING RETURNING member_id""",
        member_ids,
    )
    return {r["member_id"] for r in rows}


async def clear_away(db: Db, member_ids: list[str]) -> list[str]:
    """Drop the away marks of members found online; returns those that had one."""
    rows = await db.fetch(
        "DELETE FROM members_away WHERE member_id = ANY($1::text[]) RETURNING member_id", member_ids
    )
    return [r["member_id"] for r in rows]


async def away_since(db: Db, member_ids: list[str] | None = None) -> dict[str, datetime]:
    """member id → since when they have been away; all such members when `member_ids` is None."""
    if member_ids is None:
        rows = await db.fetch("SELECT member_id, since FROM members_away")
    else:
        rows = await db.fetch(
            "SELECT member_id, since FROM members_away WHERE member_id = ANY($1::text[])", member_ids
        )
    return {r["member_id"]: r["since"] for r in rows}


async def forget_away(db: Db, member_ids: list[str]) -> None:
    """Drop the marks of these members (who have nothing at stake any more)."""
    await db.execute("DELETE FROM members_away WHERE member_id = ANY($1::text[])", member_ids)
