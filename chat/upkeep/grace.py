"""The reconnect grace: a specialist who drops out of a conversation has
`PEERCHAT_RECONNECT_GRACE_S` to come back before the member is told and queued again.

Every process runs `ReconnectGrace.run()`. A sweep looks at the specialists of active
conversations (PostgreSQL) that have no live lease (presence, Redis). Absence is counted
from the moment it was recorded: by the socket that closed last (a clean drop, when the
member has already been told `peer_status reconnecting`), or, when the specialist's
process died and their lease aged out, by the first sweep to notice (which then tells the
member). Past the grace the conversation ends with a compare-and-set in PostgreSQL, so only
one process ends it and re-queues the member, whichever processes noticed.

While Redis is unreachable nothing is ended (absence cannot be told from an outage), and
for one TTL after Redis came back empty only absences already recorded count: the
heartbeats are still rebuilding the leases.
"""

from __future__ import annotations

import logging
import time

import asyncpg
from redis.exceptions import RedisError

from chat import positions, ticks
from chat.delivery.ended import after_end, ended_frame
from chat.handlers import transfer
from chat.metrics import METRICS
from chat.people import member
from chat.services import Services
from chat.store import grace as store
from chat.upkeep.turns import take_turn
from protocol import frames as f

log = logging.getLogger("peerchat.grace")

# Only one process sweeps at a time (the others skip that round); correctness does not
# depend on it (ending is a compare-and-set), it only saves duplicate work.
_LOCK_KEY = 0x6772616365  # "grace"


# While nothing can have changed, a round is skipped (see `take_round`),
# but one runs at least this often, whatever: it also expires warm transfers whose timer
# failed, and catches what nothing signals (a conversation handed to a specialist who was
# offline already, say): such an absence is timed at most this much late.
FULL_ROUND_EVERY_S = 60.0


def sweep_interval(grace_s: float, ttl_s: float) -> float:
    """Often enough that a member waits at most about a quarter of the grace extra."""
    return max(0.2, min(grace_s / 4, ttl_s / 3, 5.0))


class ReconnectGrace:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.grace_s = services.settings.reconnect_grace_s
        # What this process's last round saw (`take_round`).
        self._departures: int | None = None
        self._up_since: float | None = None  # `Presence.lapses`'s, read before that round
        self._offline_at_stake = True  # unknown until a round ran
        self._last_round = float("-inf")  # monotonic
        self._rounds = 0  # rounds swept here (under the sweep lock)

    async def run(self) -> None:
        settings = self.s.settings
        every = sweep_interval(settings.reconnect_grace_s, settings.presence_ttl_s)
        while True:
            await ticks.sleep(every)  # on the process's tick (chat/ticks.py)
            try:
                if not await take_turn(self.s.redis, "reconnect-grace", every):
                    continue  # another process sweeps this interval (chat/upkeep/turns.py)
                await self.take_round(every)
            except (RedisError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("reconnect grace sweep skipped: %s", type(exc).__name__)
            except Exception:
                log.exception("reconnect grace sweep failed")

    async def take_round(self, every: float) -> bool:
        """This process's turn: sweep, unless nothing can have changed since its last round
        (then False). Nothing can have if that round found no specialist of an active
        conversation offline, no specialist went offline by a close since (the departures
        count, read before the round, is the same), no process's lease ran out since and
        presence did not come up empty since (`Presence.lapses`, read before the round too:
        no lease lapsed, and presence up since the same moment): a specialist goes offline
        in no other way. An idle service sweeps once a minute then instead of every few
        seconds (each round a transaction of four statements and every active
        conversation's specialist read from PostgreSQL).

        The last round only has to have run after presence came up (as noted before it
        ran), not a TTL after: while the processes were still writing their sockets again,
        a round found the specialists of those not done yet offline, and did not count as
        finding nobody; one whose process died meanwhile never comes back, and any round
        since found them offline too. (Waiting for `Presence.steady` instead, every round in
        the first TTL after a start was a full one: at the bench's 2,000 conversations,
        several of them in its idle window, docs/performance.md round 11.)"""
        presence = self.s.presence
        clock = time.monotonic()
        since = clock - self._last_round
        try:
            departures: int | None = await presence.departures()
            lapsed, up_since = await presence.lapses(time.time(), since + 2 * every)
            skip = (
                not self._offline_at_stake
                and since < FULL_ROUND_EVERY_S
                and departures == self._departures
                and lapsed == 0
                and up_since is not None
                and up_since == self._up_since
            )
        except (RedisError, OSError, TimeoutError):
            # Without Redis the round still runs: its PostgreSQL-only part (a warm
            # transfer whose timer died with its process) must not wait for Redis.
            departures, up_since, skip = None, None, False
        if skip:
            return False
        self._offline_at_stake = True  # until a round says otherwise
        ran = self._rounds
        await self.sweep_once()
        if self._rounds != ran and departures is not None:  # it ran here, and was counted
            self._departures, self._up_since, self._last_round = departures, up_since, clock
        return True

    async def sweep_once(self) -> int:
        """One round under the sweep lock; returns how many conversations it ended."""
        # A transaction-level lock, held by a transaction left open for the round: it pins
        # one server session even behind a transaction pooler (PgBouncer), where a session
        # lock and its unlock could land on different sessions and the lock never free. The
        # round's own statements run on other pooled connections; commit releases it.
        async with self.s.db.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
                return 0
            # A warm transfer's expiry timer may have died with its process (PRODUCT.md §9).
            await transfer.expire_overdue(self.s)
            return await self.sweep(time.time())

    async def sweep(self, now: float) -> int:
        presence = self.s.presence
        # Asked every round, so a Redis that came back empty is noticed at once.
        settled = await presence.settled(now)
        by_specialist = await store.specialists_in_conversation(self.s.db)
        online = await presence.online_specialists(now) if by_specialist else set()
        offline = [sid for sid in by_specialist if sid not in online]
        self._rounds += 1
        self._offline_at_stake = bool(offline)
        if not offline:
            return 0
        absent = await presence.absent_since(offline, now, mark=settled)
        ended = 0
        for sid, (since, newly) in absent.items():
            if newly:
                if await presence.is_online(sid, "specialist", time.time()):
                    # Their process had stalled and wrote them back after `online` was read:
                    # no notice (its heartbeat would not take one back: the mark came later).
                    continue
                # Nobody saw this specialist leave (their process died); tell the members now.
                for conversation_id, member_id in by_specialist[sid]:
                    self.s.hub.to_user(
                        member(member_id),
                        f.PeerStatus(conversation_id=conversation_id, status="reconnecting"),
                    )
            if now - since < self.grace_s:
                continue
            if await presence.is_online(sid, "specialist", time.time()):
                continue  # came back a moment ago
            for conversation_id, _member in by_specialist[sid]:
                if await self._end(conversation_id, sid):
                    ended += 1
        return ended

    async def _end(self, conversation_id: str, specialist_id: str | None = None) -> bool:
        gone = await store.end_and_requeue(self.s.db, conversation_id, specialist_id)
        if gone is None:
            return False  # ended meanwhile, here or elsewhere
        conv = gone.conversation
        METRICS.peer_gone.inc()
        log.info("conversation %s ended: specialist did not return within the grace", conv.id[:8])
        hub = self.s.hub
        hub.to_user(conv.member, f.PeerStatus(conversation_id=conv.id, status="gone"))
        ended = ended_frame(conv.id, "system", "peer_gone")
        for person in conv.participants:
            hub.to_user(person, ended, conversation_id=conv.id, ends_conversation=True)
        if gone.request is not None:
            position, wait = await positions.position_of(self.s, gone.request)
            hub.to_user(
                conv.member,
                f.QueueUpdate(request_id=gone.request.id, position=position, estimated_wait_s=wait),
            )
        # Wrap-up, monitoring supervisors and the matchmaker, as for any other end.
        await after_end(self.s, conv, ended)
        return True
