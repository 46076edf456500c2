"""What ending a conversation does to a transfer of it under way (PRODUCT.md §9), apart
from chat/store/transfer.py so that chat/store/conversations.py can call it without a cycle."""

from __future__ import annotations

from datetime import datetime

from chat.store.db import Db
from chat.store.states import OFFER_REVOKED, REQUEST_CANCELLED, TRANSFER_CANCELLED


async def cancel_with_conversation(conn: Db, conversation_id: str) -> None:
    """Inside the transaction that ends the conversation (chat/store/conversations.end_in):
    any transfer of it under way is cancelled, and a cold one's queue entry with it."""
    request_ids = await conn.fetch(
        f"""UPDATE transfers SET state = {TRANSFER_CANCELLED.to}, decided_at = now()
            WHERE conversation_id = $1 AND state IN {TRANSFER_CANCELLED.from_} RETURNING request_id""",
        conversation_id,
    )
    for row in request_ids:
        if row["request_id"] is None:
            continue
        await conn.execute(
            f"""UPDATE requests SET state = {REQUEST_CANCELLED.to}, closed_at = now()
                WHERE id = $1 AND state IN {REQUEST_CANCELLED.from_}""",
            row["request_id"],
        )
        await conn.execute(
            f"""UPDATE offers SET state = {OFFER_REVOKED.to}, decided_at = now()
                WHERE request_id = $1 AND state IN {OFFER_REVOKED.from_}""",
            row["request_id"],
        )


async def withdrawn_by_end(db: Db, conversation_id: str, ended_at: datetime) -> list[tuple[str, str]]:
    """After the end: the offers its end withdrew from specialists (offer id, specialist
    id), a warm transfer's (its id is the offer's) or a cold one's queue entry's, so their
    holders are told `offer_revoked`. They were decided in the ending transaction, whose
    `now()` is the conversation's `ended_at`."""
    rows = await db.fetch(
        f"""SELECT id, to_specialist_id, request_id FROM transfers
            WHERE conversation_id = $1 AND state = {TRANSFER_CANCELLED.to} AND decided_at = $2""",
        conversation_id,
        ended_at,
    )
    found: list[tuple[str, str]] = []
    for row in rows:
        if row["to_specialist_id"] is not None:
            found.append((row["id"], row["to_specialist_id"]))
        if row["request_id"] is not None:
            offers = await db.fetch(
                f"""SELECT id, specialist_id FROM offers
                    WHERE request_id = $1 AND state = {OFFER_REVOKED.to} AND decided_at = $2""",
                row["request_id"],
                ended_at,
            )
            found += [(o["id"], o["specialist_id"]) for o in offers]
    return found
