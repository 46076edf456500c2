"""What issue 18 stores for members and their peers: read positions, past peers, and the
requests of members who left (PRODUCT.md §5 v1.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from chat.store.db import Db, FromRow
from chat.store.queue import _OFFER, Offer
from chat.store.states import OFFER_REVOKED, REQUEST_CANCELLED

ABANDONED = "abandoned"


async def mark_read(db: Db, conversation_id: str, role: str, seq: int) -> int:
    """Record that `role` has read up to `seq` (never backwards, never past the last
    message); returns the stored position."""
    stored = await db.fetchval(
        """INSERT INTO read_receipts AS r (conversation_id, role, seq)
           SELECT c.id, $2, LEAST($3, c.last_seq) FROM conversations c WHERE c.id = $1
           ON CONFLICT (conversation_id, role) DO UPDATE SET seq = GREATEST(r.seq, EXCLUDED.seq)
           RETURNING seq""",
        conversation_id,
        role,
        seq,
    )
    return int(stored or 0)


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
