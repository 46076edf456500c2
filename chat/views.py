"""Stored rows as the frames a given user may see. The one place that decides what of a
member's identity leaves the service: their alias, never their account id."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Literal, cast

from chat.people import Person
from chat.store.conversations import Conversation, StoredMessage
from chat.store.db import iso
from chat.store.queue import Offer, Request
from matching.lifecycle import ConversationState
from protocol import frames as f


def message(m: StoredMessage) -> f.Message:
    return f.Message(
        conversation_id=m.conversation_id,
        seq=m.seq,
        sender=f.Sender(role=cast(f.Role, m.sender_role), name=m.sender_name),
        body=m.body,
        client_msg_id=m.client_msg_id,
        sent_at=iso(m.sent_at),
    )


def conversation_info(c: Conversation) -> f.ConversationInfo:
    return f.ConversationInfo(
        id=c.id,
        member=f.MemberView(alias=c.member_alias),
        specialist=f.SpecialistView(id=c.specialist_id, name=c.specialist_name),
        tags=c.tags,
    )


def summary_for(c: Conversation, person: Person) -> f.ConversationSummary:
    if person == c.member:
        peer = f.Peer(role="specialist", name=c.specialist_name, id=c.specialist_id)
    else:
        peer = f.Peer(role="member", name=c.member_alias)
    state: Literal["active", "ended"] = "active" if c.state == ConversationState.ACTIVE else "ended"
    return f.ConversationSummary(id=c.id, peer=peer, last_seq=c.last_seq, tags=c.tags, state=state)


def waited_s(created_at: datetime, now: datetime) -> int:
    return max(0, int((now - created_at).total_seconds()))


def queue_entry(r: Request, now: datetime, away: Collection[str] = ()) -> f.QueueEntry:
    """`away`: the members with no live connection (chat/store/members.away_since)."""
    return f.QueueEntry(
        request_id=r.id,
        tags=r.tags,
        language=r.language,
        waited_s=waited_s(r.created_at, now),
        priority=cast(f.Priority, r.priority),
        member_online=r.member_id not in away,
    )


def offer_made(request: Request, offer: Offer, now: float, away: Collection[str] = ()) -> f.OfferMade:
    """The `offer` frame for a specialist, `now` in epoch seconds; `away` as for queue_entry."""
    return f.OfferMade(
        offer_id=offer.id,
        request_id=request.id,
        tags=request.tags,
        language=request.language,
        note=request.note,
        waited_s=max(0, int(now - request.created_at.timestamp())),
        expires_in_s=max(0, int(offer.expires_at.timestamp() - now)),
        priority="urgent" if request.priority == "urgent" else "normal",
        member_online=request.member_id not in away,
    )
