"""Carrying out the matching engine's decisions: each offer, revocation, expiry and
`set_away` written as a compare-and-set the database may refuse (a refusal tells nobody
anything and makes the leader's next cycle reload), and the people concerned told once it
is written; waiting members' `queue_update`s coalesced. chat/matchmaker.py decides when
(leadership, snapshot, cadence) and hands each cycle's decisions here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import asyncpg

from chat import handoff, views
from chat.openness import during_long_wait
from chat.people import member, specialist
from chat.services import Services
from chat.store import offers, profiles, queue
from chat.store.offers import OfferOutcome
from matching.decisions import Decisions
from matching.engine import Engine
from matching.model import Offer
from protocol import frames as f

# Offers written per transaction (chat/store/offers.py make_offers).
_OFFER_BATCH = 200


def merged(batch: Sequence[Decisions]) -> list[Decisions]:
    """The cycle's decisions with each run of those that only offer and tell (no revocation,
    expiry or `set_away`) carried out as one: a burst's new requests come to the engine one
    `request_added` each, and their offers were written one transaction apiece (one offer
    each, ~0.1 s a transaction on the loaded box: 71 offers took 8.5 s). Order is kept where
    it matters: every offer of the run is written before anything the next decision revokes,
    and a decision that revokes or expires is carried out after the run before it."""
    out: list[Decisions] = []
    run: list[Decisions] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            out.append(
                Decisions(
                    offers=tuple(o for d in run for o in d.offers),
                    preference_fallbacks=tuple(r for d in run for r in d.preference_fallbacks),
                    queue_updates=tuple(u for d in run for u in d.queue_updates),
                )
            )
        run.clear()

    for decisions in batch:
        if decisions.revoked or decisions.expired or decisions.set_away:
            flush()
            out.append(decisions)
        elif decisions:
            run.append(decisions)
    flush()
    return out


class DecisionsCarriedOut:
    """The leader's hands: `carry_out` each cycle's decisions; `stop` on shutdown."""

    def __init__(
        self,
        services: Services,
        engine: Engine,
        db: Callable[[], asyncpg.Pool[asyncpg.Record]],
        leading: Callable[[], bool],
        beat: Callable[[], Awaitable[None]],
    ) -> None:
        self.s = services
        self.engine = engine
        self._db = db
        self._leading = leading
        self._beat = beat
        # Set when the database and the engine disagree: the next cycle loads afresh.
        self.needs_load = True
        # The open requests of the last snapshot, by id.
        self.requests_by_id: dict[str, queue.Request] = {}
        # Members with no live connection, as of the last snapshot (offers and the queue say so).
        self.away: set[str] = set()
        self._queue_update_s = services.settings.queue_update_s
        # When each waiting member last heard their place, and what is held for them.
        self.told_at: dict[str, float] = {}
        self._held_updates: dict[str, tuple[str, f.QueueUpdate]] = {}
        self._flush_timer: asyncio.TimerHandle | None = None

    def stop(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    def forget_told(self) -> None:
        """Drop when-told entries of requests no longer waiting, once they pile up."""
        if len(self.told_at) > 2 * len(self.engine.requests) + 100:
            waiting = self.engine.requests
            self.told_at = {rid: at for rid, at in self.told_at.items() if rid in waiting}

    async def carry_out(self, decisions: Decisions, now: float) -> None:
        """In the order `Decisions` gives."""
        db, hub = self._db(), self.s.hub
        for revoked in decisions.revoked:
            if await offers.revoke_offer(db, revoked.id):
                hub.to_user(
                    specialist(revoked.specialist_id), f.OfferRevoked(offer_id=revoked.id, reason="withdrawn")
                )
        for expired in decisions.expired:
            await self._close_offer(expired.id, OfferOutcome.EXPIRED)
        for specialist_id in decisions.set_away:
            if await profiles.set_status(db, specialist_id, "away"):
                hub.to_user(
                    specialist(specialist_id), f.AvailabilityChanged(status="away", reason="missed_offers")
                )
        if decisions.offers:
            await self._make_offers(decisions.offers, now)
        for request_id in decisions.preference_fallbacks:
            request = self.requests_by_id.get(request_id)
            estimate = self.engine.queue_position(request_id, now)
            if request is not None and estimate is not None:
                # The notice is said once and at once; it carries the current place too.
                self._tell_queue(
                    request,
                    f.QueueUpdate(
                        request_id=request_id,
                        position=estimate.position,
                        estimated_wait_s=estimate.estimated_wait_s,
                        notice="preferred_unavailable",
                        alternatives=during_long_wait(self.s.settings, estimate.estimated_wait_s),
                    ),
                    at_once=True,
                )
        for estimate in decisions.queue_updates:
            request = self.requests_by_id.get(estimate.request_id)
            # A cold transfer's member is in their conversation: told `transfer`, not a place in line.
            if request is not None and request.transfer_of is None:
                self._tell_queue(
                    request,
                    f.QueueUpdate(
                        request_id=estimate.request_id,
                        position=estimate.position,
                        estimated_wait_s=estimate.estimated_wait_s,
                        alternatives=during_long_wait(self.s.settings, estimate.estimated_wait_s),
                    ),
                )

    # ------------------------------------------------------------ queue updates, coalesced

    def _tell_queue(self, request: queue.Request, update: f.QueueUpdate, *, at_once: bool = False) -> None:
        """Send a member's `queue_update` now, or, if they heard one less than
        `queue_update_s` ago, hold it (the latest wins) until the interval is up: each match
        moves everyone behind it, and a burst of matches re-sent every waiting member's place
        on every one (PRODUCT.md §5's "whenever either changes", at most every few seconds)."""
        t = time.monotonic()
        last = self.told_at.get(request.id)
        if last is None:
            # Their `queued` reply told them their place as they asked (chat/handlers/queue.py):
            # that counts, or every member of a burst heard it twice within a second (4,000-5,500
            # `queue_update`s in a burst of 2,000 once offers went out at once, where nobody
            # waited 2 s before their offer).
            asked_ago = time.time() - request.created_at.timestamp()
            if 0 <= asked_ago < self._queue_update_s:
                last = self.told_at[request.id] = t - asked_ago
        if at_once or last is None or t - last >= self._queue_update_s:
            self._held_updates.pop(request.id, None)
            self.told_at[request.id] = t
            self.s.hub.to_user(member(request.member_id), update)
            return
        self._held_updates[request.id] = (request.member_id, update)
        self._arm_flush(last + self._queue_update_s - t)

    def _arm_flush(self, delay: float) -> None:
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._flush_held)

    def _flush_held(self) -> None:
        """Send the held updates whose interval is up, for requests still waiting here."""
        self._flush_timer = None
        if not self._leading():
            self._held_updates.clear()
            return
        t = time.monotonic()
        waiting = self.engine.requests
        soonest: float | None = None
        for request_id, (member_id, update) in list(self._held_updates.items()):
            if request_id not in waiting:
                del self._held_updates[request_id]  # matched or cancelled meanwhile: say nothing
                continue
            due = self.told_at.get(request_id, 0.0) + self._queue_update_s
            if due <= t:
                del self._held_updates[request_id]
                self.told_at[request_id] = t
                self.s.hub.to_user(member(member_id), update)
            elif soonest is None or due < soonest:
                soonest = due
        if soonest is not None:
            self._arm_flush(soonest - t)

    async def _make_offers(self, decided: Sequence[Offer], now: float) -> None:
        """Write the offers `_OFFER_BATCH` at a time, one transaction each (a burst's 2,000,
        one transaction of six round trips apiece, outlasted the leadership lease), and tell
        each specialist once theirs is written. The lease is beaten between batches."""
        hub = self.s.hub
        for start in range(0, len(decided), _OFFER_BATCH):
            batch = []
            for offer in decided[start : start + _OFFER_BATCH]:
                if offer.request_id not in self.requests_by_id:
                    self.needs_load = True  # the snapshot lacks it: start the next cycle afresh
                    continue
                expires_at = datetime.fromtimestamp(offer.expires_at, UTC)
                batch.append(offers.NewOffer(offer.id, offer.request_id, offer.specialist_id, expires_at))
            made = await offers.make_offers(self._db(), batch)
            if len(made) < len(batch):
                self.needs_load = True  # the database refused some: start the next cycle afresh
            for offer_made in made:
                request = self.requests_by_id[offer_made.request_id]
                frame = views.offer_made(request, offer_made, now, self.away)
                if request.transfer_of is not None:  # a cold transfer: say whose conversation it is
                    frame = await handoff.offer_transfer(self.s, request, frame)
                hub.to_user(specialist(offer_made.specialist_id), frame)
            await self._beat()

    async def _close_offer(self, offer_id: str, outcome: OfferOutcome) -> None:
        # The store counts the specialist's streak of misses; the engine decided `set_away`
        # on the same count (it takes the stored one up at the next cycle).
        closed = await offers.close_offer(self._db(), offer_id, outcome)
        if closed is None:
            return
        offer, _missed = closed
        self.s.hub.to_user(
            specialist(offer.specialist_id), f.OfferRevoked(offer_id=offer.id, reason="expired")
        )
