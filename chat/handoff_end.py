"""What an end does to a transfer of the conversation under way (PRODUCT.md §9), after the
end's transaction cancelled it (chat/store/transfer_end.py): whoever it was on offer to
has that offer taken back. Apart from chat/handoff.py, which needs chat/delivery/ended.py."""

from __future__ import annotations

from chat.delivery.hub import STATS_CHANNEL
from chat.people import specialist
from chat.services import Services
from chat.store import transfer_reads
from protocol import frames as f


async def withdraw_with_end(services: Services, conversation_id: str) -> None:
    """Call after an end (chat/delivery/ended.after_end). Supervisors watching the queues
    see the transfer is over (handoff.tell_supervisors, not imported: a cycle)."""
    withdrawn = await transfer_reads.withdrawn_by_end(services.db, conversation_id)
    for specialist_id, offer_id in withdrawn:
        if specialist_id is not None:
            services.hub.to_user(
                specialist(specialist_id), f.OfferRevoked(offer_id=offer_id, reason="cancelled")
            )
    if withdrawn:
        await services.hub.broadcast(STATS_CHANNEL, f.TransferStatus(conversation_id=conversation_id))
