"""PostgreSQL's rows as the matching engine's values (`matching.model`): the one place that
says how a stored request, profile or offer looks to the engine, and (`sync`) how a snapshot
of them is fed to the engine as the events since the last one."""

from __future__ import annotations

from datetime import datetime

from chat.store import profiles, queue
from matching.decisions import Decisions
from matching.engine import Engine
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


class Converted:
    """The leader's snapshots as the engine's values, reusing the last snapshot's for rows
    unchanged since (`as_request` and `as_specialist` are pure).

    A leader reads every specialist and request each cycle, and in a burst cycles back to
    back: converting 2,000 of each anew (frozensets, timestamps, frozen dataclasses) was most
    of a cycle's CPU (docs/performance.md, round 9, matching); comparing a row with the last
    one is a fraction of that."""

    def __init__(self) -> None:
        self._specialists: dict[str, tuple[tuple[profiles.Profile, bool, int], Specialist]] = {}
        self._requests: dict[str, tuple[queue.Request, Request]] = {}

    def convert(
        self,
        requests: list[queue.Request],
        specialists: list[profiles.Profile],
        online: set[str],
        urgent: dict[str, int],
    ) -> tuple[dict[str, Request], dict[str, Specialist]]:
        """(requests by id, specialists by id), as `as_request` and `as_specialist` make them
        (`urgent`: urgent chats by specialist id, none if absent)."""
        last_specialists = self._specialists
        kept_specialists: dict[str, tuple[tuple[profiles.Profile, bool, int], Specialist]] = {}
        by_specialist: dict[str, Specialist] = {}
        for p in specialists:
            basis = (p, p.id in online, urgent.get(p.id, 0))
            seen = last_specialists.get(p.id)
            spec = seen[1] if seen is not None and seen[0] == basis else as_specialist(p, online, basis[2])
            kept_specialists[p.id] = (basis, spec)
            by_specialist[p.id] = spec
        last_requests = self._requests
        kept_requests: dict[str, tuple[queue.Request, Request]] = {}
        by_request: dict[str, Request] = {}
        for r in requests:
            seen_r = last_requests.get(r.id)
            request = seen_r[1] if seen_r is not None and seen_r[0] == r else as_request(r)
            kept_requests[r.id] = (r, request)
            by_request[r.id] = request
        self._specialists, self._requests = kept_specialists, kept_requests
        return by_request, by_specialist


def sync(
    engine: Engine,
    requests: dict[str, Request],
    specialists: dict[str, Specialist],
    offers: dict[str, Offer],
    now: float,
) -> tuple[list[Decisions], bool]:
    """The engine brought in line with a snapshot, as events (the engine is incremental: its
    service-rate history is what makes waits honest): the decisions they made, and whether
    the engine needs a full `load` instead (the database knows something it cannot have
    learnt from events)."""
    out = []
    reload = False
    # The offers the engine held before this sync: those it makes below (a specialist's
    # slot freed) are not in the snapshot yet, and are not declines. (Taken for declines,
    # the freed specialist was barred from the request, the request offered to another
    # and refused by the database, and the next cycle reloaded everything.)
    held = list(engine.offers.items())
    # Specialists first, so offers made by later events see current slots and status.
    for spec in specialists.values():
        engine_has = engine.specialists.get(spec.id)
        if engine_has is not spec and engine_has != spec:
            out.append(engine.specialist_changed(spec, now))
    # Offers the engine held that the database no longer has pending.
    for offer_id, offer in held:
        if offer_id in offers:
            continue
        if offer.request_id in requests:
            out.append(engine.offer_declined(offer_id, now))  # declined, or expired elsewhere
        else:
            out.append(engine.offer_accepted(offer_id, now))  # accepted (or cancelled: removed below)
    for request_id in list(engine.requests):
        if request_id not in requests:
            out.append(engine.request_removed(request_id, now))  # claimed by hand, or cancelled
    for request_id, request in requests.items():
        known = engine.requests.get(request_id)
        if known is None:
            out.append(engine.request_added(request, now))
        elif not request.avoid <= known.avoid:
            reload = True  # the database knows a refusal the engine missed
    if not offers.keys() <= {offer_id for offer_id, _ in held}:
        reload = True  # offers we did not make (an earlier leader's)
    return out, reload
