"""PostgreSQL's rows as the matching engine's values (`matching.model`): the one place that
says how a stored request, profile or offer looks to the engine."""

from __future__ import annotations

from datetime import datetime

from chat.store import profiles, queue
from matching.model import Offer, Priority, Request, Specialist, Status


def epoch(ts: datetime) -> float:
    return ts.timestamp()


def as_request(r: queue.Request) -> Request:
    return Request(
        id=r.id,
        member_id=r.member_id,
        tags=frozenset(r.tags),
        language=r.language,
        priority=Priority(r.priority),
        created_at=epoch(r.created_at),
        prefer_specialist=r.prefer_specialist,
        avoid=frozenset(r.avoid),
        transfer_of=r.transfer_of,
    )


def as_specialist(p: profiles.Profile, online: set[str], urgent_chats: int = 0) -> Specialist:
    """Offline unless presence says online; then available or away as stored.
    `urgent_chats`: their active conversations that began urgent (the urgent-load cap)."""
    if p.id not in online:
        status = Status.OFFLINE
    else:
        status = Status.AVAILABLE if p.status == "available" else Status.AWAY
    return Specialist(
        id=p.id,
        tags=frozenset(p.tags),
        languages=frozenset(p.languages),
        max_chats=p.max_chats,
        active_chats=p.active_chats,
        status=status,
        idle_since=epoch(p.idle_since),
        missed_offers=p.missed_offers,
        urgent_chats=urgent_chats,
        wrap_up_until=epoch(p.wrap_up_until) if p.wrap_up_until else 0.0,
    )


def as_offer(o: queue.Offer) -> Offer:
    return Offer(o.id, o.request_id, o.specialist_id, epoch(o.created_at), epoch(o.expires_at))
