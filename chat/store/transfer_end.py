"""What ending a conversation does to a transfer of it under way (PRODUCT.md §9), apart
from chat/store/transfer.py so that chat/store/conversations.py can call it without a cycle."""

from __future__ import annotations

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
