"""`transfer` (PRODUCT.md §9): the conversation's specialist, or a supervisor, hands an
active conversation on, warm (to a named specialist, who gets an `offer` carrying
`transfer`) or cold (back to the queue). Accepting and declining a warm transfer come here
from `accept`/`decline` (chat/handlers/specialist.py) when the offer id is a transfer's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from chat import handoff
from chat.gateway.session import Session
from chat.handlers.registry import Refuse, handles
from chat.people import member, specialist
from chat.services import Services
from chat.store import audit, profiles, transfer, transfer_reads, transfer_start, transfer_warm
from chat.store.transfer import Refusal
from protocol import frames as f
from protocol.codes import ErrorCode

log = logging.getLogger("peerchat.transfer")

_REFUSALS = {
    Refusal.NOT_FOUND: (ErrorCode.NOT_FOUND, "no such conversation"),
    Refusal.FORBIDDEN: (ErrorCode.FORBIDDEN, "not your conversation"),
    Refusal.NOT_ACTIVE: (ErrorCode.INVALID_STATE, "this conversation has ended"),
    Refusal.TRANSFERRING: (ErrorCode.INVALID_STATE, "this conversation is already being transferred"),
    Refusal.TARGET_SELF: (ErrorCode.NOT_FOUND, "you cannot transfer a conversation to its own specialist"),
    Refusal.TARGET_UNKNOWN: (ErrorCode.NOT_FOUND, "no such specialist"),
    Refusal.LANGUAGE: (
        ErrorCode.INVALID_STATE,
        "that specialist does not speak this conversation's language",
    ),
    Refusal.NO_SLOT: (ErrorCode.INVALID_STATE, "that specialist has no free slot"),
    Refusal.WRAP_UP: (ErrorCode.INVALID_STATE, "that specialist is in wrap-up"),
    Refusal.BLOCKED: (ErrorCode.BLOCKED, "a block or report keeps that specialist and this member apart"),
    Refusal.EXPIRED: (ErrorCode.OFFER_EXPIRED, "that transfer is no longer offered to you"),
}
_BACKGROUND: set[asyncio.Task[None]] = set()


def _refuse(refusal: Refusal) -> Refuse:
    code, message = _REFUSALS[refusal]
    return Refuse(code, message)


@handles(f.Transfer, "specialist", "supervisor")
async def on_transfer(services: Services, session: Session, frame: f.Transfer) -> None:
    to = frame.to_specialist
    if to is not None:
        if to == session.user_id and session.role == "specialist":
            raise _refuse(Refusal.TARGET_SELF)
        if not await services.presence.is_online(to, "specialist", time.time()):
            if await profiles.get(services.db, to) is None:
                raise _refuse(Refusal.TARGET_UNKNOWN)
            raise Refuse(ErrorCode.INVALID_STATE, "that specialist is offline")
    timeout = services.settings.offer_timeout_s
    result = await transfer_start.begin(
        services.db,
        frame.conversation_id,
        by_role=session.role,
        by_id=session.user_id,
        by_name=session.name,
        to_specialist=to,
        note=frame.note,
        expires_at=datetime.now(UTC) + timedelta(seconds=timeout),
    )
    if isinstance(result, Refusal):
        raise _refuse(result)
    row, conv = result.transfer, result.conversation
    log.info("conversation %s: %s transfer %s", conv.id[:8], "warm" if to else "cold", row.id[:8])
    if session.role == "supervisor":
        await audit.record(
            services.db,
            actor_id=session.user_id,
            actor_role=session.role,
            actor_name=session.name,
            action="transfer",
            conversation_id=conv.id,
            target=to,
        )
    session.push_frame(handoff.waiting(conv.id, frame.ref))
    await handoff.began(services, row)
    if to is not None:
        services.hub.to_user(specialist(to), handoff.warm_offer(result, conv.tags, int(timeout)))
        _later(timeout, lambda: _expire(services, row.id))
        return
    # Cold: the holder's part ends now; the member learns it waits; the queue takes it.
    await handoff.hand_off(services, conv.id, row.from_specialist_id)
    services.hub.to_user(member(conv.member_id), handoff.waiting(conv.id))
    await services.poke_matchmaker()


def _later(delay: float, work: Callable[[], Awaitable[None]]) -> None:
    async def run() -> None:
        await asyncio.sleep(delay)
        try:
            await work()
        except Exception as exc:  # a warm transfer left offered is expired by the next `transfer`
            log.warning("transfer expiry failed: %s", type(exc).__name__)

    task = asyncio.get_running_loop().create_task(run())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


async def _expire(services: Services, transfer_id: str) -> None:
    closed = await transfer_warm.close_warm(services.db, transfer_id, "expired")
    if closed is None:
        return  # accepted, declined or cancelled meanwhile
    if closed.to_specialist_id is not None:
        services.hub.to_user(
            specialist(closed.to_specialist_id), f.OfferRevoked(offer_id=closed.id, reason="expired")
        )
    await handoff.failed(services, closed, "expired")
    await services.poke_matchmaker()  # the slot it held is free


async def expire_overdue(services: Services) -> None:
    """Warm transfers past their expiry whose timer died with the process that set it (a
    crash, a rolling restart): expired now, and told as the timer would have. Called by a
    periodic sweep (chat/upkeep/grace.py); `close_warm` is a compare-and-set, so a timer or
    another process doing the same tells nobody twice."""
    for row in await transfer_reads.overdue(services.db):
        await _expire(services, row.id)


async def is_transfer(services: Services, offer_id: str) -> transfer.Transfer | None:
    return await transfer_reads.get(services.db, offer_id)


async def accept(services: Services, session: Session, row: transfer.Transfer, ref: str | None) -> None:
    result = await transfer_warm.accept_warm(services.db, row.id, session.user_id)
    if isinstance(result, Refusal):
        if result in (Refusal.NO_SLOT, Refusal.BLOCKED):
            await handoff.failed(services, row, "unavailable")
        raise _refuse(result)
    conv = result.conversation
    log.info("conversation %s: warm transfer %s accepted", conv.id[:8], row.id[:8])
    await handoff.hand_off(services, conv.id, row.from_specialist_id)
    await handoff.taken(services, conv, row.from_name, result.note, asked=session, ref=ref)
    await services.poke_matchmaker()


async def decline(services: Services, session: Session, row: transfer.Transfer, ref: str | None) -> None:
    closed = await transfer_warm.close_warm(services.db, row.id, "declined", session.user_id)
    if closed is None:
        raise Refuse(ErrorCode.OFFER_EXPIRED, "that offer is no longer open")
    session.push_frame(f.Declined(offer_id=row.id, ref=ref))
    await handoff.failed(services, closed, "declined")
    await services.poke_matchmaker()
