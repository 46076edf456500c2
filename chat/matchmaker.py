"""The matchmaker: one process at a time turns the queue into offers.

Leadership (chat/leadership.py) is a PostgreSQL session advisory lock on a connection of
its own, with a lease: if the leading process dies or loses PostgreSQL, another takes over
within a few seconds. The leader wakes on a poke (any process, via the bus) or every
second, reads a snapshot from PostgreSQL, lets `matching` decide, and applies each decision
as a compare-and-set, so even two leaders at once (a network partition) could not offer a
request twice or overfill a specialist: the database refuses the second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from redis.exceptions import RedisError

from chat import handoff, snapshot, views
from chat.delivery.hub import POKE_CHANNEL
from chat.delivery.watchers import Broadcasts
from chat.leadership import ELECTION_EVERY_S, Leadership
from chat.openness import during_long_wait
from chat.people import member, specialist
from chat.services import Services
from chat.store import conversation_list, members, offers, profiles, queue
from chat.store.db import open_pool
from chat.store.offers import OfferOutcome
from matching.decisions import Decisions
from matching.engine import Engine
from matching.model import MatchConfig, Offer, Request, Specialist
from protocol import frames as f

log = logging.getLogger("peerchat.matchmaker")

_TICK_S = 1.0
_CLOSE_S = 2.0
# With nobody waiting, a full re-read every second cost 13 % of the leader's CPU under chat
# load with 2,000 specialists (docs/performance.md): re-read this often instead. (Its
# broadcasts are also the supervisors' queue_stats refresh "every 5 s", chat/delivery/
# watchers.py, which tests/e2e/test_dashboard.py relies on: 30 s broke it.)
_IDLE_CYCLE_S = 5.0
# Offers written per transaction (chat/store/offers.py make_offers).
_OFFER_BATCH = 200
# The leader's own connections (`Matchmaker._db`): its snapshot and offer writes must not
# wait in line behind a burst's request handlers for the shared pool.
_POOL_SIZE = 2


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


class Matchmaker:
    def __init__(self, services: Services) -> None:
        self.s = services
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._leadership = Leadership(services.settings.session_database_url)
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        settings = services.settings
        self.config = MatchConfig(
            offer_timeout_s=settings.offer_timeout_s,
            relax_after_s=settings.relax_after_s,
            prefer_window_s=settings.prefer_window_s,
            max_urgent_per_specialist=settings.max_urgent_per_specialist,
        )
        self.engine = Engine(self.config, new_id=lambda: uuid.uuid4().hex)
        self._needs_load = True
        self._last_cycle = 0.0
        self._last_online: set[str] = set()
        self._requests_by_id: dict[str, queue.Request] = {}
        # Members with no live connection, as of the last snapshot (offers and the queue say so).
        self._away: set[str] = set()
        self._broadcasts = Broadcasts(services, self.poke)
        self._queue_update_s = settings.queue_update_s
        # When each waiting member last heard their place, and what is held for them.
        self._told_at: dict[str, float] = {}
        self._held_updates: dict[str, tuple[str, f.QueueUpdate]] = {}
        self._flush_timer: asyncio.TimerHandle | None = None

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="matchmaker")

    async def stop(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._task is not None:
            self._task.cancel()
            # Bounded: a query cancelled on a hung PostgreSQL leaves its pooled connection
            # to be reset, which never answers; the pool's terminate() ends it later.
            await asyncio.wait({self._task}, timeout=_CLOSE_S)
        await self._leadership.resign()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), _CLOSE_S)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    @property
    def leading(self) -> bool:
        return self._leadership.leading

    async def _elect(self) -> bool:
        held = await self._leadership.hold()
        if held is None:  # just took the lead
            self._needs_load = True
            await self._open_pool()
            await self.s.bus.subscribe(POKE_CHANNEL)
            return True
        return held

    @property
    def _db(self) -> asyncpg.Pool[asyncpg.Record]:
        """The leader's own small pool once open, else the process's.

        In a burst, 2,000 `request` handlers hold and queue for the shared pool's 20
        connections; the leader's snapshot and each batch of offers waited behind all of them,
        so offers trickled out seconds after the requests were stored (docs/performance.md,
        round 8, burst)."""
        return self._pool if self._pool is not None else self.s.db

    async def _open_pool(self) -> None:
        if self._pool is not None:
            return
        settings = self.s.settings
        try:
            self._pool = await open_pool(
                settings.database_url, min_size=1, max_size=_POOL_SIZE, behind_pooler=settings.behind_pooler
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Lead on the shared pool meanwhile; the next lead tries again.
            log.warning("matching's own connections: %s; using the shared pool", type(exc).__name__)

    async def _run(self) -> None:
        while True:
            try:
                if not await self._elect():
                    await asyncio.sleep(ELECTION_EVERY_S)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _TICK_S)
                poked = self._wake.is_set()
                self._wake.clear()
                if poked or not self._idle() or time.monotonic() - self._last_cycle >= _IDLE_CYCLE_S:
                    await self.cycle()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, RedisError) as exc:
                log.warning("matching cycle failed: %s; retrying", type(exc).__name__)
                await self._leadership.resign()
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("matching cycle failed")
                await asyncio.sleep(0.5)

    def _idle(self) -> bool:
        """Nobody waiting and no offer out: a timer tick has nothing to decide. (Any change
        that could matter pokes us, so an idle leader only re-reads every few seconds.)"""
        return not self._needs_load and not self.engine.requests and not self.engine.offers

    # ------------------------------------------------------------------ one cycle

    async def cycle(self) -> None:
        """Bring the engine in line with PostgreSQL, let time pass, carry out decisions.

        The engine is incremental (its service-rate history is what makes waits honest),
        so each cycle feeds it the differences since the last one as events; a full
        `load` happens on taking the lead or after any disagreement with the database.
        """
        db = self._db
        now = time.time()
        self._last_cycle = time.monotonic()
        # One snapshot: read as three separate statements, an accept landing between them
        # looked like a decline (offer gone, request still in line, slot still free), and the
        # engine offered that specialist another request they had no room for (issue 18).
        async with db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            requests = await queue.open_requests(conn)
            specialists = await profiles.list_all(conn)
            pending = await queue.pending_offers(conn)
            self._away = set(await members.away_since(conn))
            urgent = await conversation_list.urgent_chats_by_specialist(conn)
        try:
            online = await self.s.presence.online_specialists(now)
            self._last_online = online
        except (RedisError, OSError):
            # Redis is down: keep matching on who was online a moment ago rather than stall
            # the queue; offers to someone who left simply expire.
            online = self._last_online
        snap_requests: dict[str, Request] = {r.id: snapshot.as_request(r) for r in requests}
        snap_specs = {p.id: snapshot.as_specialist(p, online, urgent.get(p.id, 0)) for p in specialists}
        snap_offers: dict[str, Offer] = {o.id: snapshot.as_offer(o) for o in pending}
        self._requests_by_id = {r.id: r for r in requests}
        if self._needs_load:
            self._needs_load = False
            batch = [self.engine.load(snap_requests.values(), snap_specs.values(), snap_offers.values(), now)]
        else:
            batch = self._sync(snap_requests, snap_specs, snap_offers, now)
        batch.append(self.engine.tick(now))
        for decisions in merged(batch):
            await self._carry_out(decisions, now)
        await self._broadcasts.after_cycle(requests, specialists, online, self._away, now)
        if len(self._told_at) > 2 * len(self.engine.requests) + 100:
            waiting = self.engine.requests
            self._told_at = {rid: at for rid, at in self._told_at.items() if rid in waiting}

    def _sync(
        self,
        requests: dict[str, Request],
        specialists: dict[str, Specialist],
        offers: dict[str, Offer],
        now: float,
    ) -> list[Decisions]:
        engine = self.engine
        out = []
        # The offers the engine held before this sync: those it makes below (a specialist's
        # slot freed) are not in the snapshot yet, and are not declines. (Taken for declines,
        # the freed specialist was barred from the request, the request offered to another
        # and refused by the database, and the next cycle reloaded everything.)
        held = list(engine.offers.items())
        # Specialists first, so offers made by later events see current slots and status.
        for spec in specialists.values():
            if engine.specialists.get(spec.id) != spec:
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
                self._needs_load = True  # the database knows a refusal the engine missed
        if not offers.keys() <= {offer_id for offer_id, _ in held}:
            self._needs_load = True  # offers we did not make (an earlier leader's)
        return out

    async def _carry_out(self, decisions: Decisions, now: float) -> None:
        """In the order `Decisions` gives."""
        db, hub = self._db, self.s.hub
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
            request = self._requests_by_id.get(request_id)
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
            request = self._requests_by_id.get(estimate.request_id)
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
        last = self._told_at.get(request.id)
        if last is None:
            # Their `queued` reply told them their place as they asked (chat/handlers/queue.py):
            # that counts, or every member of a burst heard it twice within a second (4,000-5,500
            # `queue_update`s in a burst of 2,000 once offers went out at once, where nobody
            # waited 2 s before their offer).
            asked_ago = time.time() - request.created_at.timestamp()
            if 0 <= asked_ago < self._queue_update_s:
                last = self._told_at[request.id] = t - asked_ago
        if at_once or last is None or t - last >= self._queue_update_s:
            self._held_updates.pop(request.id, None)
            self._told_at[request.id] = t
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
        if not self.leading:
            self._held_updates.clear()
            return
        t = time.monotonic()
        waiting = self.engine.requests
        soonest: float | None = None
        for request_id, (member_id, update) in list(self._held_updates.items()):
            if request_id not in waiting:
                del self._held_updates[request_id]  # matched or cancelled meanwhile: say nothing
                continue
            due = self._told_at.get(request_id, 0.0) + self._queue_update_s
            if due <= t:
                del self._held_updates[request_id]
                self._told_at[request_id] = t
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
                if offer.request_id not in self._requests_by_id:
                    self._needs_load = True  # the snapshot lacks it: start the next cycle afresh
                    continue
                expires_at = datetime.fromtimestamp(offer.expires_at, UTC)
                batch.append(offers.NewOffer(offer.id, offer.request_id, offer.specialist_id, expires_at))
            made = await offers.make_offers(self._db, batch)
            if len(made) < len(batch):
                self._needs_load = True  # the database refused some: start the next cycle afresh
            for offer_made in made:
                request = self._requests_by_id[offer_made.request_id]
                frame = views.offer_made(request, offer_made, now, self._away)
                if request.transfer_of is not None:  # a cold transfer: say whose conversation it is
                    frame = await handoff.offer_transfer(self.s, request, frame)
                hub.to_user(specialist(offer_made.specialist_id), frame)
            await self._leadership.beat()

    def queue_position(self, request_id: str, now: float) -> tuple[int, int] | None:
        """(position, estimated wait) if this process leads and the engine knows the request."""
        if not self.leading:
            return None
        estimate = self.engine.queue_position(request_id, now)
        if estimate is None:
            return None
        return estimate.position, estimate.estimated_wait_s

    async def _close_offer(self, offer_id: str, outcome: OfferOutcome) -> None:
        # The store counts the specialist's streak of misses; the engine decided `set_away`
        # on the same count (it takes the stored one up at the next cycle).
        closed = await offers.close_offer(self._db, offer_id, outcome)
        if closed is None:
            return
        offer, _missed = closed
        self.s.hub.to_user(
            specialist(offer.specialist_id), f.OfferRevoked(offer_id=offer.id, reason="expired")
        )
