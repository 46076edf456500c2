"""The queue: a member's request and cancel; a specialist's or supervisor's queue watch."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from msgspec import structs

from chat import positions, views
from chat.delivery.hub import QUEUE_CHANNEL
from chat.gateway.session import Session
from chat.handlers.registry import Refuse, error, handles
from chat.openness import alternatives_for, openness
from chat.people import specialist
from chat.safety import alerting
from chat.services import Services
from chat.store import members, queue
from chat.store.db import iso
from matching.lifecycle import RequestState
from matching.model import CRISIS_TAG
from matching.risk import default_phrases
from protocol import frames as f
from protocol.codes import ErrorCode

log = logging.getLogger("peerchat.dispatch")
RISK = default_phrases()


@handles(f.RequestPeer, "member")
async def on_request(services: Services, session: Session, frame: f.RequestPeer) -> None:
    state = openness(services.settings)
    if not state.open:
        # Said before anything is stored: a closed service queues nobody (PRODUCT.md §5 v1.1).
        refusal = error(ErrorCode.CLOSED_HOURS, "we are closed now; see opens_at", frame.ref)
        alternatives = await alternatives_for(services, state)
        session.push_frame(structs.replace(refusal, opens_at=state.opens_at, alternatives=alternatives))
        return
    tags = sorted({t.strip().lower() for t in frame.tags if t.strip()})
    # A risk phrase in the note, or the member saying they are in crisis (PRODUCT.md §8).
    urgent = CRISIS_TAG in tags or RISK.matches(frame.note or "")
    # One connection for the check, the request and its place: a burst's 2,000 requests
    # queue for the pool once each rather than three times, and no more than
    # `REQUESTS_AT_ONCE` at a time, so the accepts that match them never wait behind them all.
    async with services.storing_requests, services.db.acquire() as conn:
        try:
            request, ahead = await queue.create_placed_request(
                conn,
                member_id=session.user_id,
                member_alias=session.name,
                tags=tags,
                language=(frame.language or None),
                note=frame.note,
                priority="urgent" if urgent else "normal",
                prefer_specialist=frame.prefer_specialist,
                unless_suspended=True,
            )
        except queue.Suspended as suspended:
            # Nothing stored; the member page still shows crisis resources (PRODUCT.md §9).
            refusal = error(ErrorCode.SUSPENDED, "you cannot ask for a peer until `until`", frame.ref)
            session.push_frame(structs.replace(refusal, until=iso(suspended.suspension.until)))
            return
        except queue.AlreadyOpen:
            refused = "you already have an open request or conversation"
            raise Refuse(ErrorCode.INVALID_STATE, refused) from None
    position, wait = await positions.position_of(services, request, ahead)
    if urgent:
        await alerting.urgent_request(services.db, request)
        log.warning("urgent request %s queued: supervisors alerted", request.id[:8])
    reply = f.Queued(
        request_id=request.id,
        position=position,
        estimated_wait_s=wait,
        open=state.open,
        opens_at=state.opens_at,
        alternatives=await alternatives_for(services, state, wait),
        ref=frame.ref,
    )
    session.push_frame(reply)
    services.hub.to_user(
        session.person,
        f.QueueUpdate(request_id=request.id, position=position, estimated_wait_s=wait),
        skip=session,
    )
    await services.poke_matchmaker()


@handles(f.Cancel, "member")
async def on_cancel(services: Services, session: Session, frame: f.Cancel) -> None:
    revoked = await queue.cancel_request(services.db, frame.request_id, session.user_id)
    if revoked is None:
        request = await queue.get_request(services.db, frame.request_id)
        if request is not None and request.member_id == session.user_id and request.transfer_of is not None:
            # A cold transfer's queue entry (PRODUCT.md §9) goes with its conversation, which
            # would otherwise stay active with nobody to hold it.
            raise Refuse(ErrorCode.INVALID_STATE, "your conversation is being handed on; end it to leave")
        raise Refuse(ErrorCode.NOT_FOUND, "no open request of yours with that id")
    session.push_frame(f.Cancelled(request_id=frame.request_id, ref=frame.ref))
    services.hub.to_user(session.person, f.Cancelled(request_id=frame.request_id), skip=session)
    for offer in revoked:
        services.hub.to_user(
            specialist(offer.specialist_id), f.OfferRevoked(offer_id=offer.id, reason="cancelled")
        )
    await services.poke_matchmaker()


@handles(f.QueueWatch, "specialist", "supervisor")
async def on_queue_watch(services: Services, session: Session, frame: f.QueueWatch) -> None:
    """`queue` now, read from PostgreSQL, then on every change (PRODUCT.md §5).

    The reply goes first: the subscribe and the word to the leader wait on Redis, up to
    seconds each while it hangs, and the watcher's queue does not need them. Nothing is lost
    by it: a change published before this process listens is sent again, because a first
    watcher's `queue_watched` makes the leader's next cycle resend the queue.

    The watcher joins the set in the same step as `first` is decided, before any await: the
    set is the count of who needs the subscription. (Added after the subscribe, a second
    watch within one subscribe confirmation also took itself for the first; if its socket
    then closed, its detach found the set empty and unsubscribed, and the first watcher was
    left attached to a process that no longer heard the queue.)"""
    now = datetime.now(UTC)
    waiting = [r for r in await queue.open_requests(services.db) if r.state == RequestState.WAITING]
    away = await members.away_since(services.db, [r.member_id for r in waiting])
    first = not services.hub.queue_watchers
    services.hub.queue_watchers.add(session)
    session.push_frame(f.Queue(requests=[views.queue_entry(r, now, away) for r in waiting], ref=frame.ref))
    if first:
        await services.bus.subscribe(QUEUE_CHANNEL)
        await services.queue_watched()
