"""What an end does to a transfer of the conversation under way (PRODUCT.md §9), after the
end's transaction cancelled it (chat/store/transfer_end.py): whoever it was on offer to
has that offer taken back. Apart from chat/handoff.py, which needs chat/delivery/ended.py."""

from __future__ import annotations

from chat.people import specialist
from chat.services import Services
from chat.store import transfer_reads
from protocol import frames as f


async def withdraw_with_end(services: Services, conversation_id: str) -> None:
    """Call after an end (chat/delivery/ended.after_end)."""
    for specialist_id, offer_id in await transfer_reads.withdrawn_by_end(services.db, conversation_id):
        services.hub.to_user(specialist(specialist_id), f.OfferRevoked(offer_id=offer_id, reason="cancelled"))
