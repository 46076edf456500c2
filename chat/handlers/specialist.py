"""A specialist's side: availability, and taking a request (accept an offer, claim one by
hand) or declining an offer."""

from __future__ import annotations

from msgspec.structs import replace

from chat import handoff, views
from chat.gateway.session import Outbound, Session
from chat.handlers import transfer
from chat.handlers.registry import Refuse, handles
from chat.people import specialist
from chat.services import Services, remember_pair
from chat.store import assignment, conversations, offers, profiles, wrap_up
from chat.store.assignment import Assignment, Refusal
from chat.store.db import iso
from chat.store.offers import OfferOutcome
from protocol import frames as f
from protocol.codec import encode
from protocol.codes import ErrorCode


@handles(f.SetAvailability, "specialist")
async def on_availability(services: Services, session: Session, frame: f.SetAvailability) -> None:
    profile = await profiles.set_status(services.db, session.user_id, frame.status)
    if profile is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no profile")
    wrapping = await wrap_up.until(services.db, session.user_id)
    changed = f.AvailabilityChanged(status=frame.status, wrap_up_until=iso(wrapping) if wrapping else None)
    session.push_frame(replace(changed, ref=frame.ref))
    services.hub.to_user(session.person, changed, skip=session)
    await services.poke_matchmaker()


@handles(f.Accept, "specialist")
async def on_accept(services: Services, session: Session, frame: f.Accept) -> None:
    # A matchmaker's offer first (a burst's 2,000 accepts each asked for a transfer first):
    # a warm transfer's offer id is no offer's, so it is refused as expired, then found here.
    result = await assignment.accept_offer(services.db, frame.offer_id, session.user_id)
    if result is Refusal.OFFER_EXPIRED:
        handed = await transfer.is_transfer(services, frame.offer_id)
        if handed is not None:  # a warm transfer's offer (PRODUCT.md §9)
            await transfer.accept(services, session, handed, frame.ref)
            return
    await _started(services, session, result, frame.ref)


@handles(f.Claim, "specialist")
async def on_claim(services: Services, session: Session, frame: f.Claim) -> None:
    result = await assignment.claim_request(services.db, frame.request_id, session.user_id)
    await _started(services, session, result, frame.ref)


_REFUSALS = {
    Refusal.OFFER_EXPIRED: (ErrorCode.OFFER_EXPIRED, "that offer has expired or was taken"),
    Refusal.ALREADY_CLAIMED: (ErrorCode.ALREADY_CLAIMED, "someone else took that request"),
    Refusal.NO_SLOT: (ErrorCode.INVALID_STATE, "you are at your chat capacity"),
    Refusal.LANGUAGE: (ErrorCode.INVALID_STATE, "that request asks for a language you do not list"),
    Refusal.NOT_FOUND: (ErrorCode.NOT_FOUND, "no such request"),
    Refusal.BLOCKED: (ErrorCode.BLOCKED, "a block or report keeps you and this member apart"),
    Refusal.WRAP_UP: (ErrorCode.WRAP_UP, "you are in wrap-up after a conversation; see wrap_up_until"),
    Refusal.HANDED_ON: (ErrorCode.INVALID_STATE, "you handed this conversation on"),
}


async def _started(
    services: Services, session: Session, result: Assignment | Refusal, ref: str | None
) -> None:
    if isinstance(result, Refusal):
        code, message = _REFUSALS[result]
        raise Refuse(code, message)
    conv = result.conversation or await conversations.get(services.db, result.conversation_id)
    assert conv is not None
    for offer in result.revoked:
        services.hub.to_user(
            specialist(offer.specialist_id), f.OfferRevoked(offer_id=offer.id, reason="claimed")
        )
    if result.handed_on is not None:  # a cold transfer's queue entry (PRODUCT.md §9)
        row, note = result.handed_on
        await handoff.taken(services, conv, row.from_name, note, asked=session, ref=ref)
        await services.poke_matchmaker()
        return
    remember_pair(services.participants, conv.id, conv.participants)
    started = f.ConversationStarted(conversation=views.conversation_info(conv))
    # The direct reply carries the ref; the fan-out (other devices, the member) does not.
    session.push(Outbound(encode(replace(started, ref=ref)), conv.id, None, True))
    for person in (conv.specialist, conv.member):
        services.hub.to_user(person, started, conversation_id=conv.id, starts_conversation=True, skip=session)
    await services.poke_matchmaker()


@handles(f.Decline, "specialist")
async def on_decline(services: Services, session: Session, frame: f.Decline) -> None:
    handed = await transfer.is_transfer(services, frame.offer_id)
    if handed is not None:
        await transfer.decline(services, session, handed, frame.ref)
        return
    closed = await offers.close_offer(services.db, frame.offer_id, OfferOutcome.DECLINED, session.user_id)
    if closed is None:
        raise Refuse(ErrorCode.OFFER_EXPIRED, "that offer is no longer open")
    session.push_frame(f.Declined(offer_id=frame.offer_id, ref=frame.ref))
    await services.poke_matchmaker()
