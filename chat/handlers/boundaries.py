"""Boundaries (PRODUCT.md §9): a specialist's `block` of the member of their conversation,
a member's `report` of its specialist. Both bar the pair from matching, claim and transfer
(chat/store/boundaries.py), withdraw a pending offer the barred specialist holds for the
member's open request or a warm transfer of theirs, and raise a supervisor alert. Reasons
and details are never logged."""

from __future__ import annotations

from chat import handoff
from chat.delivery.ended import end_conversation
from chat.gateway.session import Session
from chat.handlers.registry import Refuse, handles
from chat.people import specialist
from chat.safety import alerting
from chat.services import Services
from chat.store import boundaries, conversations, transfer_warm
from chat.store.alerts import AlertKind
from chat.store.db import iso
from matching.lifecycle import TransferState
from protocol import frames as f
from protocol.codes import ErrorCode


@handles(f.BlockMember, "specialist")
async def on_block(services: Services, session: Session, frame: f.BlockMember) -> None:
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
    if conv.specialist_id != session.user_id or not conv.member_id:
        raise Refuse(ErrorCode.FORBIDDEN, "only the conversation's specialist may block its member")
    added = await boundaries.add_block(
        services.db,
        conversation_id=conv.id,
        member_id=conv.member_id,
        specialist_id=conv.specialist_id,
        reason=frame.reason.strip() or None,
        days=services.settings.block_days,
    )
    if added is None:
        raise Refuse(ErrorCode.INVALID_STATE, "this member is already blocked from this conversation")
    block, withdrawn = added
    await alerting.raise_alert(services.db, AlertKind.BLOCK, conversation_id=conv.id)
    session.push_frame(f.Blocked(block_id=block.id, until=iso(block.until), ref=frame.ref))
    _withdrawn(services, conv.specialist_id, withdrawn, "blocked")
    await _withdraw_warm_transfers(services, conv.member_id, conv.specialist_id, "blocked")
    if frame.end and conv.state == "active":
        await end_conversation(services, conv.id, by="specialist", reason="ended")
    await services.poke_matchmaker()


@handles(f.Report, "member")
async def on_report(services: Services, session: Session, frame: f.Report) -> None:
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
    if conv.member_id != session.user_id:
        raise Refuse(ErrorCode.FORBIDDEN, "not your conversation")
    about = await boundaries.reported_specialist(services.db, conv.id, conv.specialist_id)
    added = await boundaries.add_report(
        services.db,
        conversation_id=conv.id,
        member_id=conv.member_id,
        specialist_id=about,
        reason=frame.reason.strip() or None,
        details=frame.details.strip() or None,
    )
    if added is None:
        raise Refuse(ErrorCode.INVALID_STATE, "you have reported this conversation already")
    report, withdrawn = added
    await alerting.raise_alert(services.db, AlertKind.REPORT, conversation_id=conv.id)
    session.push_frame(f.Reported(report_id=report.id, ref=frame.ref))
    # The specialist is not told that a member reported them: a plain withdrawal.
    _withdrawn(services, about, withdrawn, "withdrawn")
    await _withdraw_warm_transfers(services, conv.member_id, about, "withdrawn")
    await services.poke_matchmaker()


def _withdrawn(services: Services, specialist_id: str, offer_ids: list[str], reason: str) -> None:
    """The bar withdrew offers the specialist held for the member's open request: gone from
    every device of theirs; the matchmaker (poked next) offers the request to someone else."""
    for offer_id in offer_ids:
        services.hub.to_user(specialist(specialist_id), f.OfferRevoked(offer_id=offer_id, reason=reason))


async def _withdraw_warm_transfers(
    services: Services, member_id: str, specialist_id: str, reason: str
) -> None:
    """A warm transfer of the member's conversation offered to the now-barred specialist
    could never be accepted (accept checks the bar): withdraw it now. Its target's offer
    goes, and the sender, who keeps the conversation, gets `transfer_failed` `unavailable`."""
    for transfer_id in await boundaries.warm_transfers_to(services.db, member_id, specialist_id):
        closed = await transfer_warm.close_warm(
            services.db, transfer_id, TransferState.CANCELLED, specialist_id
        )
        if closed is None:
            continue  # accepted, declined or expired meanwhile
        services.hub.to_user(specialist(specialist_id), f.OfferRevoked(offer_id=closed.id, reason=reason))
        await handoff.failed(services, closed, "unavailable")
