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
import logging
import time
import uuid

import asyncpg
from redis.exceptions import RedisError

from chat import snapshot, ticks
from chat.carrying_out import DecisionsCarriedOut, merged
from chat.delivery.hub import POKE_CHANNEL
from chat.delivery.watchers import Broadcasts
from chat.leadership import ELECTION_EVERY_S, Leadership
from chat.presence import SpecialistsMark
from chat.services import Services
from chat.store import conversation_list, members, profiles, queue
from chat.store.db import Reused, open_pool
from matching.engine import Engine
from matching.model import MatchConfig, Offer

log = logging.getLogger("peerchat.matchmaker")

_TICK_S = 1.0
_CLOSE_S = 2.0
# With nobody waiting and no offer out, every change that matters pokes the leader (a status,
# a profile, a connect or a clean disconnect, a start or an end, an alert), so an idle leader
# cycles on pokes. What changes unpoked: a specialist's process dying (its lease ages out) is
# looked for every `_IDLE_LOOK_S` by `Presence.specialists_mark`, a few words per live
# process (not the cycle's five PostgreSQL reads of every specialist and request: that
# re-read every 5 s was ~6 % of an idle web process's samples at 2,000 specialists,
# docs/performance.md round 9; nor every online specialist's id: the union of 2,000 read
# and set-built every 5 s was ~5 % of the leader's, round 11); a wrap-up ending is a cycle at
# that moment; anything else (a hand edit in PostgreSQL, a lost poke) the full re-read every
# `_IDLE_CYCLE_S`. (A 30 s re-read once broke tests/e2e/test_dashboard.py: the stats a
# supervisor was first sent were read by their process, not the leader, and a change back
# to the leader's last stats was never sent; `Services.restate_stats` fixed that.)
_IDLE_LOOK_S = 5.0
_IDLE_CYCLE_S = 60.0
# The leader's own connections (`Matchmaker._db`): its snapshot and offer writes must not
# wait in line behind a burst's request handlers for the shared pool.
_POOL_SIZE = 2


class Matchmaker:
    def __init__(self, services: Services) -> None:
        self.s = services
        self._wake = asyncio.Event()  # set by a poke, and by `_nap`'s timer
        self._poked = False
        self._restate = False
        self._last_cycle = 0.0
        self._last_look = 0.0
        self._last_online: set[str] = set()
        # `Presence.specialists_mark` as read with `_last_online` (None: not read).
        self._last_mark: SpecialistsMark | None = None
        self._wrap_up_ends = float("inf")  # the next wrap-up to end (unix time), as last read
        # Last cycle's rows, kept so an unchanged one is neither rebuilt nor converted again.
        self._request_rows = Reused(queue.Request)
        self._profile_rows = Reused(profiles.Profile)
        self._snapshot = snapshot.Converted()
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
        self._poked = True
        self._wake.set()

    def restate_stats(self) -> None:
        """Poke, and send the next cycle's `queue_stats` even if unchanged
        (`Services.restate_stats`)."""
        self._restate = True
        self.poke()

    def queue_watched(self) -> None:
        """Poke, and send the next cycle's queue even if unchanged: a process has a queue
        watcher again (`Services.queue_watched`)."""
        self._broadcasts.queue_watched()
        self.poke()

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
            # As a new leader: send the queue until a publish says nobody listens (a watcher
            # may have come, and poked another leader, since this process last led).
            self._broadcasts.queue_watched()
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
                    await ticks.sleep(ELECTION_EVERY_S)
                    continue
                await self._nap(_TICK_S)
                poked, self._poked = self._poked, False
                self._wake.clear()
                if poked or not self._idle() or await self._unpoked_change():
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

    async def _nap(self, seconds: float) -> None:
        """Until a poke, or `seconds` on the process's tick (chat/ticks.py): the leader's
        wait every second was `asyncio.wait_for`, a task, a timer and a wake of its own
        each time (docs/performance.md round 11)."""
        if self._wake.is_set():
            return
        loop = asyncio.get_running_loop()
        timer = ticks.call_at(loop, loop.time() + seconds, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()

    def _idle(self) -> bool:
        """Nobody waiting and no offer out: a timer tick has nothing to decide. (Any change
        that could matter pokes us; what does not is `_unpoked_change`'s.)"""
        return not self._out.needs_load and not self.engine.requests and not self.engine.offers

    async def _unpoked_change(self) -> bool:
        """While idle: whether something changed that pokes nobody (see `_IDLE_CYCLE_S`).

        Every way a specialist comes online or goes offline pokes the leader after its
        presence write, but two: their process dies (its lease lapses), or a write that
        failed is made by the process's next rewrite (or Redis came back empty and the
        processes write everything again). Each of those changes `specialists_mark` (see
        `RedisPresence.specialists_mark`), so an unchanged mark since the last cycle read
        the online specialists, with that mark, in the same script, means the cycle's
        online set still holds, save for what poked. The poked ways each poke after their
        presence write, so the cycle they wake reads the change: a socket's connect
        (chat/gateway/connection.py `serve`: presence.connect, then a poke for a
        specialist) and a close that left a specialist offline (`_depart`:
        presence.disconnect, then a poke). Presence forgets only members (an erasure); a
        specialist's `forget` would change a set's size all the same. A status or a
        profile is PostgreSQL's, and every change of them pokes; a poke lost on the way
        (the bus down) is the full re-read's every `_IDLE_CYCLE_S`, as before."""
        clock = time.monotonic()
        if clock - self._last_cycle >= _IDLE_CYCLE_S or time.time() >= self._wrap_up_ends:
            return True
        if clock - self._last_look < _IDLE_LOOK_S:
            return False
        self._last_look = clock
        try:
            mark = await self.s.presence.specialists_mark(time.time())
        except (RedisError, OSError):
            return False  # the cycle would match on the last known anyway
        return mark != self._last_mark

    # ------------------------------------------------------------------ one cycle

    async def cycle(self) -> None:
        """Bring the engine in line with PostgreSQL, let time pass, carry out decisions.

        The engine is incremental (its service-rate history is what makes waits honest),
        so each cycle feeds it the differences since the last one as events; a full
        `load` happens on taking the lead or after any disagreement with the database.
        """
        db = self._db
        now = time.time()
        self._last_cycle = self._last_look = time.monotonic()
        if self._restate:
            self._restate = False
            self._broadcasts.forget_stats()
        # One snapshot: read as three separate statements, an accept landing between them
        # looked like a decline (offer gone, request still in line, slot still free), and the
        # engine offered that specialist another request they had no room for (issue 18).
        async with db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            requests = await queue.open_requests(conn, self._request_rows)
            specialists = await profiles.list_all(conn, self._profile_rows)
            pending = await queue.pending_offers(conn)
            self._out.away = set(await members.away_since(conn))
            urgent = await conversation_list.urgent_chats_by_specialist(conn)
        try:
            online, self._last_mark = await self.s.presence.specialists_marked(now)
            self._last_online = online
        except (RedisError, OSError):
            # Redis is down: keep matching on who was online a moment ago rather than stall
            # the queue; offers to someone who left simply expire. The next look that reads
            # a mark cycles.
            online, self._last_mark = self._last_online, None
        self._wrap_up_ends = min(
            (t for p in specialists if p.wrap_up_until and (t := p.wrap_up_until.timestamp()) > now),
            default=float("inf"),
        )
        # An unchanged specialist is the very object the engine holds: `sync` skips it.
        snap_requests, snap_specs = self._snapshot.convert(requests, specialists, online, urgent)
        snap_offers: dict[str, Offer] = {o.id: snapshot.as_offer(o) for o in pending}
        self._out.requests_by_id = {r.id: r for r in requests}
        if self._out.needs_load:
            self._out.needs_load = False
            batch = [self.engine.load(snap_requests.values(), snap_specs.values(), snap_offers.values(), now)]
        else:
            batch, self._out.needs_load = snapshot.sync(
                self.engine, snap_requests, snap_specs, snap_offers, now
            )  # needs_load: the next cycle loads the engine whole
        batch.append(self.engine.tick(now))
        for decisions in merged(batch):
            await self._out.carry_out(decisions, now)
        await self._broadcasts.after_cycle(requests, specialists, online, self._out.away, now)
        self._out.forget_told()

    def queue_position(self, request_id: str, now: float) -> tuple[int, int] | None:
        """(position, estimated wait) if this process leads and the engine knows the request."""
        if not self.leading:
            return None
        estimate = self.engine.queue_position(request_id, now)
        if estimate is None:
            return None
        return estimate.position, estimate.estimated_wait_s
