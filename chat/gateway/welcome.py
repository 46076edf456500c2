"""The `welcome` frame and what follows it: the user's state, then any resumed messages."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

from msgspec import structs

from chat import handoff, positions, views
from chat.delivery import ended
from chat.gateway.session import CatchUp, Session
from chat.openness import alternatives_for, openness
from chat.privacy import access
from chat.services import Services, remember_pair
from chat.store import conversations, members, profiles, queue, transfer_reads, wrap_up
from chat.store.db import iso
from matching.lifecycle import ConversationState
from protocol import frames as f

RESUME_ENDED_WITHIN_S = 24 * 3600


async def greet(services: Services, session: Session, hello: f.Hello) -> None:
    db, user_id = services.db, session.user_id
    availability: Literal["available", "away"] | None = None
    wrap_up_until: str | None = None
    offers: list[f.OfferMade] = []
    requests: list[f.RequestInfo] = []
    if session.role == "specialist":
        profile = await profiles.ensure(db, user_id, session.name)
        availability = "available" if profile.status == "available" else "away"
        wrapping = await wrap_up.until(db, user_id)
        wrap_up_until = iso(wrapping) if wrapping else None
        now = time.time()
        for offer in await queue.pending_offers(db, user_id):
            request = await queue.get_request(db, offer.request_id)
            if request is not None:
                away = await members.away_since(db, [request.member_id])
                made = views.offer_made(request, offer, now, away)
                if request.transfer_of is not None:  # a cold transfer (PRODUCT.md §9)
                    made = await handoff.offer_transfer(services, request, made)
                offers.append(made)
        offers += await handoff.warm_offers_for(services, user_id)
    elif session.role == "member":
        request = await queue.open_request_of(db, user_id)
        # A cold transfer's queue entry is their conversation's, shown on it (below), not a
        # request of theirs (PRODUCT.md §9).
        if request is not None and request.transfer_of is None:
            position, wait = await positions.position_of(services, request)
            requests.append(
                f.RequestInfo(
                    request_id=request.id,
                    tags=request.tags,
                    language=request.language,
                    position=position,
                    estimated_wait_s=wait,
                )
            )
    mine = await conversations.of_person(db, session.person, ended_within_s=RESUME_ENDED_WITHIN_S)
    # A resume of a conversation the user may no longer read (a specialist past the access
    # window) is ignored, as one they never took part in.
    at, windows = datetime.now(UTC), access.windows_of(services.settings)
    mine = [c for c in mine if access.may_read_conversation(session.role, c, at, windows)]
    for c in mine:
        remember_pair(services.participants, c.id, c.participants)
    active = [c for c in mine if c.state == ConversationState.ACTIVE]
    state = openness(services.settings)
    past_peers = None
    alternatives = None
    summaries = [views.summary_for(c, session.person) for c in active]
    if active:
        peer_role = "specialist" if session.role == "member" else "member"
        read = await members.read_positions(db, [c.id for c in active], peer_role)
        summaries = [structs.replace(s, peer_read_seq=read.get(s.id, 0)) for s in summaries]
        if session.role == "specialist":
            away = await members.away_since(db, [c.member_id for c in active])
            summaries = [
                structs.replace(s, member_online=c.member_id not in away)
                for s, c in zip(summaries, active, strict=True)
            ]
    if active and session.role != "supervisor":
        summaries = await _with_transfers(services, session, summaries)
    if session.role == "member":
        retention_days = services.settings.retention_days
        past_peers = [
            f.PastPeer(id=p.id, name=p.name, last_at=iso(p.last_at))
            for p in await members.past_peers(db, user_id, within_days=retention_days)
        ]
        waiting_s = requests[0].estimated_wait_s if requests else None
        alternatives = None if active else await alternatives_for(services, state, waiting_s)
    session.push_frame(
        f.Welcome(
            user=f.User(id=user_id, role=session.role, name=session.name),
            conversations=summaries,
            requests=requests,
            offers=offers,
            availability=availability,
            open=state.open,
            opens_at=state.opens_at,
            alternatives=alternatives,
            past_peers=past_peers,
            wrap_up_until=wrap_up_until,
            ref=hello.ref,
        )
    )
    if session.role == "member":
        # Requests cancelled while the member was away (PEERCHAT_MEMBER_GRACE_S), told once.
        for request_id, reason in await members.take_untold_cancellations(db, user_id):
            session.push_frame(f.Cancelled(request_id=request_id, reason=reason))
    resume = hello.resume or {}
    for c in mine:
        if c.id in resume:
            # Everything after the client's last seq, then live messages, gap-free.
            session.know(c.id, min(resume[c.id], c.last_seq))
            session.push(CatchUp(c.id))
            if c.state == ConversationState.ENDED:
                # It ended while this device was away: say so after its last messages.
                session.push(ended.ended_outbound(c))
        elif c.state == ConversationState.ACTIVE:
            session.know(c.id, c.last_seq)


async def _with_transfers(
    services: Services, session: Session, summaries: list[f.ConversationSummary]
) -> list[f.ConversationSummary]:
    """A transfer under way, as each side must see it after a reload (PRODUCT.md §9): its
    specialist, a warm one they (or a supervisor) offered, to whom and until when; its
    member, a cold one (nobody holds it: no peer, and the `waiting` they were told)."""
    under_way = await transfer_reads.open_of(services.db, [s.id for s in summaries])
    if not under_way:
        return summaries
    out = []
    for s in summaries:
        t = under_way.get(s.id)
        if t is None:
            out.append(s)
        elif session.role == "member" and t.to_specialist_id is None:
            out.append(structs.replace(s, peer=None, transfer=handoff.transfer_view(t)))
        elif session.role == "specialist" and t.to_specialist_id is not None:
            out.append(structs.replace(s, transfer=handoff.transfer_view(t)))
        else:
            out.append(s)  # a warm one is the staff's business until it is accepted
    return out
