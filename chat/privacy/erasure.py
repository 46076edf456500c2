"""A member's erasure (`DELETE /api/me`, PRODUCT.md §10): their open request cancelled and
their active conversation ended the way a `cancel` and an `end` are (so every device of
both sides is told, on every process), their sockets closed, then everything stored that
names them or holds what they wrote or was written to them removed in one transaction
(chat/store/privacy.py), their presence dropped from Redis, and what every process caches
under their account id forgotten (chat/privacy/forgetting.py). An audit row records the
erasure without naming them. Doing it twice is a no-op.
"""

from __future__ import annotations

import asyncio
import logging

from chat.delivery.ended import end_conversation
from chat.metrics import METRICS
from chat.people import member, specialist
from chat.privacy import forgetting
from chat.revocations import erased_sub
from chat.services import Services
from chat.store import conversations, queue
from chat.store import privacy as store
from matching.lifecycle import ConversationState
from protocol import frames as f
from protocol.codes import CloseCode

log = logging.getLogger("peerchat.erasure")

REASON = "erased"


class StillBusy(Exception):
    """Another device of the member kept opening requests faster than they were ended:
    nothing was erased; retry."""


AUDIT_REASON = "the member asked for their data to be erased"
ATTEMPTS = 5


async def erase(services: Services, member_id: str) -> store.Erasure:
    """Erase the member; returns what was found (`empty`: nothing, a repeat)."""
    conversation_ids: set[str] = set()
    for _ in range(ATTEMPTS):
        conversation_ids |= await _close_open_business(services, member_id)
        # After `conversation_ended` reached their devices (the close rides behind it).
        services.hub.close_user(member(member_id), CloseCode.FORBIDDEN)
        async with services.db.acquire() as conn:
            erased = await store.erase_member(
                conn,
                member_id,
                AUDIT_REASON,
                erased_sub=erased_sub(services.settings, "member", member_id),
                max_token_ttl_s=services.settings.max_token_ttl_s,
            )
        if not erased.busy:
            break
        # Another device asked for a peer, or was matched, meanwhile: end that too.
    else:
        raise StillBusy("the member's request or conversation kept reopening")
    await services.presence.forget(member_id, "member")
    await services.admission.forget("member", member_id)  # pc:sockets:<hmac>
    # Every process's caches too (their keyed names, their conversations' pairs).
    await forgetting.forget_everywhere(services, member_id, conversation_ids)
    # Sockets on other processes close a moment after their close ring, and a departure
    # may write again (a lease renewed just before; `members_away`) or cache their names
    # again (a detach): forget twice more, 2 and 7 s on, well within the 10 s PRODUCT.md
    # §10 allows.
    task = asyncio.get_running_loop().create_task(_forget_later(services, member_id, conversation_ids))
    _LATER.add(task)
    task.add_done_callback(_LATER.discard)
    if not erased.empty:
        METRICS.erasures.inc()
        # Counts only: never who.
        log.info("erasure: %d rows, %d messages", erased.rows, erased.messages)
    return erased


FORGET_AGAIN_S = (2.0, 5.0)
_LATER: set[asyncio.Task[None]] = set()


async def _forget_later(services: Services, member_id: str, conversation_ids: set[str]) -> None:
    for wait in FORGET_AGAIN_S:
        await asyncio.sleep(wait)
        try:
            await services.presence.forget(member_id, "member")
            await services.admission.forget("member", member_id)
            await store.forget_leftovers(services.db, member_id)
            await forgetting.forget_everywhere(services, member_id, conversation_ids)
        except Exception as exc:
            log.warning("erasure: leftovers not forgotten: %s", type(exc).__name__)


async def _close_open_business(services: Services, member_id: str) -> set[str]:
    """Cancel the member's open request and end their active conversation; returns the ids
    of all their conversations (whose pairs every process must forget)."""
    request = await queue.open_request_of(services.db, member_id)
    if request is not None:
        revoked = await queue.cancel_request(services.db, request.id, member_id)
        if revoked is not None:
            services.hub.to_user(member(member_id), f.Cancelled(request_id=request.id, reason=REASON))
            for offer in revoked:
                services.hub.to_user(
                    specialist(offer.specialist_id), f.OfferRevoked(offer_id=offer.id, reason="cancelled")
                )
            await services.poke_matchmaker()
    ids: set[str] = set()
    for conv in await conversations.of_person(services.db, member(member_id)):
        if conv.state == ConversationState.ACTIVE:
            await end_conversation(services, conv.id, by="member", reason=REASON)
        services.participants.pop(conv.id, None)
        ids.add(conv.id)
    return ids
