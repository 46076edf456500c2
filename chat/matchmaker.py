"""The matchmaker: one process at a time turns the queue into offers.

Leadership (chat/leadership.py) is a PostgreSQL session advisory lock on a connection of
its own, with a lease: if the leading process dies or loses PostgreSQL, another takes over
within a few seconds. The leader wakes on a poke (any process, via the bus) or every
second, reads a snapshot from PostgreSQL, lets `matching` decide, and applies each decision
as a compare-and-set, so even two leaders at once (a network partition) could not offer a
request twice or overfill a specialist: the database refuses the second. Carrying the
decisions out (the writes, telling people) is chat/carrying_out.py's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import asyncpg
from redis.exceptions import RedisError

from chat import snapshot
from chat.carrying_out import DecisionsCarriedOut, merged
from chat.delivery.hub import POKE_CHANNEL
from chat.delivery.watchers import Broadcasts
from chat.leadership import ELECTION_EVERY_S, Leadership
from chat.services import Services
from chat.store import conversation_list, members, profiles, queue
from chat.store.db import open_pool
from matching.decisions import Decisions
from matching.engine import Engine
from matching.model import MatchConfig, Offer, Request, Specialist

log = logging.getLogger("peerchat.matchmaker")

_TICK_S = 1.0
_CLOSE_S = 2.0
# With nobody waiting, a full re-read every second cost 13 % of the leader's CPU under chat
# load with 2,000 specialists (docs/performance.md): re-read this often instead. (Its
# broadcasts are also the supervisors' queue_stats refresh "every 5 s", chat/delivery/
# watchers.py, which tests/e2e/test_dashboard.py relies on: 30 s broke it.)
_IDLE_CYCLE_S = 5.0
# The leader's own connections (`Matchmaker._db`): its snapshot and offer writes must not
# wait in line behind a burst's request handlers for the shared pool.
_POOL_SIZE = 2


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
        self._broadcasts = Broadcasts(services, self.poke)
        self._out = DecisionsCarriedOut(
            services, self.engine, lambda: self._db, lambda: self.leading, self._leadership.beat
        )

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="matchmaker")

    async def stop(self) -> None:
        self._out.stop()
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
            self._out.needs_load = True
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
        return not self._out.needs_load and not self.engine.requests and not self.engine.offers

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
            self._out.away = set(await members.away_since(conn))
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
        self._out.requests_by_id = {r.id: r for r in requests}
        if self._out.needs_load:
            self._out.needs_load = False
            batch = [self.engine.load(snap_requests.values(), snap_specs.values(), snap_offers.values(), now)]
        else:
            batch = self._sync(snap_requests, snap_specs, snap_offers, now)
        batch.append(self.engine.tick(now))
        for decisions in merged(batch):
            await self._out.carry_out(decisions, now)
        await self._broadcasts.after_cycle(requests, specialists, online, self._out.away, now)
        self._out.forget_told()

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
                self._out.needs_load = True  # the database knows a refusal the engine missed
        if not offers.keys() <= {offer_id for offer_id, _ in held}:
            self._out.needs_load = True  # offers we did not make (an earlier leader's)
        return out

    def queue_position(self, request_id: str, now: float) -> tuple[int, int] | None:
        """(position, estimated wait) if this process leads and the engine knows the request."""
        if not self.leading:
            return None
        estimate = self.engine.queue_position(request_id, now)
        if estimate is None:
            return None
        return estimate.position, estimate.estimated_wait_s
