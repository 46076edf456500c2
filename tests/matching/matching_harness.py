"""A stand-in for chat/ that drives the engine with a controllable clock and keeps its
own record of the truth (the "database"), plus an independent statement of the §7 rules
to check the engine's decisions against."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, settings

from matching.decisions import Decisions
from matching.engine import Engine
from matching.model import CRISIS_TAG, MatchConfig, Offer, Priority, Request, Specialist, Status, queue_key

# Deterministic in CI: the same examples every run, no per-example deadline.
CI_SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def make_request(
    rid: str,
    now: float,
    *,
    tags: tuple[str, ...] = (),
    language: str | None = "en",
    urgent: bool = False,
    prefer: str | None = None,
    avoid: tuple[str, ...] = (),
    member: str | None = None,
    transfer_of: str | None = None,
) -> Request:
    return Request(
        id=rid,
        member_id=member or f"m-{rid}",
        tags=frozenset(tags),
        language=language,
        priority=Priority.URGENT if urgent else Priority.NORMAL,
        created_at=now,
        prefer_specialist=prefer,
        avoid=frozenset(avoid),
        transfer_of=transfer_of,
    )


def make_specialist(
    sid: str,
    *,
    tags: tuple[str, ...] = (),
    languages: tuple[str, ...] = ("en",),
    max_chats: int = 1,
    active: int = 0,
    status: Status = Status.AVAILABLE,
    idle_since: float = 0.0,
) -> Specialist:
    return Specialist(
        id=sid,
        tags=frozenset(tags),
        languages=frozenset(languages),
        max_chats=max_chats,
        active_chats=active,
        status=status,
        idle_since=idle_since,
    )


class RuleBroken(AssertionError):
    pass


@dataclass
class Driver:
    """Feeds the engine and checks every decision against the rules."""

    config: MatchConfig = field(default_factory=MatchConfig)
    now: float = 1000.0
    check: bool = True
    engine: Engine = field(init=False)
    requests: dict[str, Request] = field(default_factory=dict)
    specialists: dict[str, Specialist] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)
    fallbacks: set[str] = field(default_factory=set)
    streak: dict[str, int] = field(default_factory=dict)
    log: list[Decisions] = field(default_factory=list)

    def __post_init__(self) -> None:
        counter = itertools.count(1)
        self.engine = Engine(self.config, lambda: f"o{next(counter)}")

    # ----------------------------------------------------------- driving

    def add_specialist(self, s: Specialist) -> Decisions:
        self.specialists[s.id] = s
        return self._apply(self.engine.specialist_changed(s, self.now))

    def change_specialist(self, s: Specialist) -> Decisions:
        return self.add_specialist(s)

    def add_request(self, r: Request) -> Decisions:
        self.requests[r.id] = r
        return self._apply(self.engine.request_added(r, self.now))

    def cancel(self, rid: str) -> Decisions:
        self.requests.pop(rid, None)
        return self._apply(self.engine.request_removed(rid, self.now))

    def accept(self, offer_id: str) -> Decisions:
        offer = self.offers.pop(offer_id)
        r = self.requests.pop(offer.request_id)
        s = self.specialists[offer.specialist_id]
        self.specialists[s.id] = self._took(s, r)
        self.streak[s.id] = 0
        return self._apply(self.engine.offer_accepted(offer_id, self.now))

    def decline(self, offer_id: str) -> Decisions:
        offer = self.offers.pop(offer_id)
        r = self.requests[offer.request_id]
        self.requests[r.id] = replace(r, avoid=r.avoid | {offer.specialist_id})
        self.streak[offer.specialist_id] = 0
        return self._apply(self.engine.offer_declined(offer_id, self.now))

    def claim(self, rid: str, sid: str) -> Decisions:
        r = self.requests.pop(rid)
        mine = [o for o in self.offers.values() if o.request_id == rid and o.specialist_id == sid]
        for o in mine:
            del self.offers[o.id]
        if mine:
            # The engine takes a claim of a request on offer to the claimer as their accept
            # of it (Engine.request_claimed), which ends their streak of missed offers.
            self.streak[sid] = 0
        self.specialists[sid] = self._took(self.specialists[sid], r)
        return self._apply(self.engine.request_claimed(rid, sid, self.now))

    def _took(self, s: Specialist, r: Request) -> Specialist:
        urgent = 1 if r.priority is Priority.URGENT else 0
        return replace(
            s, active_chats=s.active_chats + 1, urgent_chats=s.urgent_chats + urgent, idle_since=self.now
        )

    def end_conversation(self, sid: str, *, urgent: bool = False, wrap_up_s: float = 0.0) -> Decisions:
        """End one of their conversations (an urgent one if they hold only urgent ones),
        with a wrap-up of `wrap_up_s` after it."""
        s = self.specialists[sid]
        urgent = s.urgent_chats > 0 and (urgent or s.urgent_chats >= s.active_chats)
        until = self.now + wrap_up_s if wrap_up_s else 0.0
        self.specialists[sid] = replace(
            s,
            active_chats=max(0, s.active_chats - 1),
            urgent_chats=s.urgent_chats - 1 if urgent else s.urgent_chats,
            wrap_up_until=max(s.wrap_up_until, until),
        )
        return self._apply(self.engine.conversation_ended(sid, self.now, urgent=urgent, wrap_up_until=until))

    def reload(self) -> Decisions:
        """Leader failover: the engine rebuilds from the driver's "database"."""
        snapshot = self.engine.load(
            self.requests.values(), self.specialists.values(), self.offers.values(), self.now
        )
        return self._apply(snapshot)

    def advance(self, seconds: float) -> Decisions:
        self.now += seconds
        return self._apply(self.engine.tick(self.now))

    def may_claim(self, rid: str, sid: str) -> bool:
        """A hand claim this "database" would allow: the request waits; the specialist is
        online with a free slot (pending offers do not count), speaks its language and is not
        in its avoid set; not in wrap-up. The urgent-load cap does not apply to a hand claim
        (PRODUCT.md §8)."""
        r, s = self.requests.get(rid), self.specialists.get(sid)
        if r is None or s is None or s.status is Status.OFFLINE:
            return False
        language_ok = r.language is None or r.language in s.languages
        wrapping_up = s.wrap_up_until > self.now
        return language_ok and s.active_chats < s.max_chats and s.id not in r.avoid and not wrapping_up

    def pending_for(self, rid: str) -> Offer | None:
        return next((o for o in self.offers.values() if o.request_id == rid), None)

    # ---------------------------------------------------------- checking

    def _apply(self, d: Decisions) -> Decisions:
        self.log.append(d)
        expected_away: list[str] = []
        for offer in d.revoked:
            if self.check and offer.id not in self.offers:
                raise RuleBroken(f"revoked {offer} that was not pending")
            self.offers.pop(offer.id, None)
        for offer in d.expired:
            if self.check and offer.id not in self.offers:
                raise RuleBroken(f"expired {offer} that was not pending")
            if self.check and offer.expires_at > self.now:
                raise RuleBroken(f"expired {offer} early at {self.now}")
            self.offers.pop(offer.id, None)
            r = self.requests[offer.request_id]
            self.requests[r.id] = replace(r, avoid=r.avoid | {offer.specialist_id})
            sid = offer.specialist_id
            self.streak[sid] = self.streak.get(sid, 0) + 1
            if self.streak[sid] >= self.config.missed_offers_before_away:
                self.streak[sid] = 0
                if self.specialists[sid].status is Status.AVAILABLE:
                    expected_away.append(sid)
        if self.check and sorted(d.set_away) != sorted(expected_away):
            raise RuleBroken(f"set_away {d.set_away}, expected {expected_away}")
        for sid in d.set_away:
            self.specialists[sid] = replace(self.specialists[sid], status=Status.AWAY)
        self.fallbacks.update(d.preference_fallbacks)
        for offer in d.offers:
            if self.check:
                self._check_new_offer(offer)
            self.offers[offer.id] = offer
        if self.check:
            self._check_state(d)
        return d

    def _check_new_offer(self, offer: Offer) -> None:
        r = self.requests.get(offer.request_id)
        s = self.specialists.get(offer.specialist_id)
        if r is None or s is None:
            raise RuleBroken(f"offer {offer} for an unknown request or specialist")
        if any(o.request_id == r.id for o in self.offers.values()):
            raise RuleBroken(f"second pending offer for {r.id}")
        if s.id in r.avoid:
            raise RuleBroken(f"{r.id} offered to {s.id}, who is in its avoid set")
        if r.language is not None and r.language not in s.languages:
            raise RuleBroken(f"{r.id} ({r.language}) offered to {s.id} {sorted(s.languages)}")
        if s.wrap_up_until > self.now:
            raise RuleBroken(f"{r.id} offered to {s.id} during their wrap-up")
        if r.priority is Priority.URGENT and self.urgent_full(s):
            raise RuleBroken(f"urgent {r.id} offered to {s.id} at the urgent-load cap")
        if offer.expires_at != self.now + self.config.offer_timeout_s:
            raise RuleBroken(f"{offer} expiry is not now + timeout")

    def room(self, s: Specialist) -> int:
        pending = sum(1 for o in self.offers.values() if o.specialist_id == s.id)
        return s.max_chats - s.active_chats - pending

    def urgent_full(self, s: Specialist) -> bool:
        """At the urgent-load cap: urgent or high-risk chats plus pending urgent offers."""
        urgent_held = sum(
            1
            for o in self.offers.values()
            if o.specialist_id == s.id and self.requests[o.request_id].priority is Priority.URGENT
        )
        return s.urgent_chats + urgent_held >= self.config.max_urgent_per_specialist

    def eligible(self, r: Request, s: Specialist, *, need_room: bool = True) -> bool:
        """§7 eligibility, written out again independently of the engine."""
        if s.status is not Status.AVAILABLE or (need_room and self.room(s) <= 0):
            return False
        # Wrap-up: no offers at all until it ends (PRODUCT.md §8).
        if s.wrap_up_until > self.now:
            return False
        if r.priority is Priority.URGENT and self.urgent_full(s):
            return False
        if r.language is not None and r.language not in s.languages:
            return False
        if s.id in r.avoid:
            return False
        held = (
            r.prefer_specialist is not None
            and r.priority is Priority.NORMAL
            and r.id not in self.fallbacks
            and self.now < r.created_at + self.config.prefer_window_s
        )
        if held:
            return s.id == r.prefer_specialist
        if r.tags and self.now < r.created_at + self.config.relax_after_s:
            wanted = r.tags | {CRISIS_TAG} if r.priority is Priority.URGENT else r.tags
            return bool(wanted & s.tags)
        return True

    def _check_state(self, d: Decisions) -> None:
        engine = self.engine
        if set(engine.offers) != set(self.offers):
            raise RuleBroken(f"engine offers {sorted(engine.offers)} != driver {sorted(self.offers)}")
        if set(engine.requests) != set(self.requests):
            raise RuleBroken("engine and driver disagree on waiting requests")
        for r in self.requests.values():
            if not r.avoid <= engine.requests[r.id].avoid:
                raise RuleBroken(f"engine forgot avoid entries of {r.id}")
        for s in self.specialists.values():
            # A supervisor may cut capacity below active chats; pending offers must go then.
            if self.room(s) < 0 and any(o.specialist_id == s.id for o in self.offers.values()):
                raise RuleBroken(f"{s.id} over capacity with offers pending")
            if engine.specialists[s.id].active_chats != s.active_chats:
                raise RuleBroken(f"active chats of {s.id} disagree")
            if engine.specialists[s.id].urgent_chats != s.urgent_chats:
                raise RuleBroken(f"urgent chats of {s.id} disagree")

        offered = {o.request_id for o in self.offers.values()}
        unoffered = [r for r in self.requests.values() if r.id not in offered]
        # No starvation: nobody left in line while an eligible specialist has room.
        for r in unoffered:
            for s in self.specialists.values():
                if self.eligible(r, s):
                    raise RuleBroken(f"{r.id} waits while {s.id} is eligible with room")
        # Queue order: whoever got an offer in this event had nobody eligible ahead of them
        # (urgent before normal, then oldest) still waiting without an offer.
        for offer in d.offers:
            if offer.id not in self.offers:
                continue
            got = queue_key(self.requests[offer.request_id])
            s = self.specialists[offer.specialist_id]
            for r in unoffered:
                if queue_key(r) < got and self.eligible(r, s, need_room=False):
                    raise RuleBroken(f"{r.id} was skipped for {offer.request_id} by {s.id}")
