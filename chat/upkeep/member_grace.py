"""Members who leave (PRODUCT.md §5 v1.1): a member with no live connection anywhere keeps
their place for `PEERCHAT_MEMBER_GRACE_S`; past that their waiting request is cancelled
(`abandoned`, told on their next connection) and never offered, and an active conversation
is ended by `system` with reason `peer_gone`, which frees the specialist.

The pattern of chat/upkeep/grace.py (the specialist's reconnect grace), with the absence
kept in PostgreSQL (`members_away`): written by the gateway when a member's last socket
closes and cleared when one opens, on whichever process; the sweep marks members whose
process died (their lease aged out) and acts once the grace has passed. Ending and
cancelling are compare-and-sets, so processes sweeping at once cannot do anything twice.
While Redis is unreachable nothing is decided (absence cannot be told from an outage).
"""

from __future__ import annotations

import logging
import time

import asyncpg
from redis.exceptions import RedisError

from chat import ticks
from chat.delivery.ended import end_conversation
from chat.metrics import METRICS
from chat.people import specialist
from chat.services import Services
from chat.store import members as store
from chat.upkeep.grace import sweep_interval
from chat.upkeep.turns import take_turn
from protocol import frames as f

log = logging.getLogger("peerchat.grace")

_LOCK_KEY = 0x6D656D6265  # "membe"
# Presence is asked this many members per round trip (one pipeline on one connection).
# It was one call per member with 200 in flight: at 2,000 waiting or chatting members that
# emptied redis-py's connection pool every sweep, so the sweep itself was skipped
# (MaxConnectionsError) and, meanwhile, socket caps went unchecked and loop lag rose.
_ONLINE_BATCH = 500


def full_sweep_interval(grace_s: float, ttl_s: float) -> float:
    """How often a round asks presence about every member at stake while a process may
    have died: one takes a presence TTL to show anyway, so at most once a TTL (and at most
    a quarter of the grace), never more often than the rounds themselves."""
    return max(sweep_interval(grace_s, ttl_s), min(grace_s / 4, ttl_s))


def steady_sweep_interval(grace_s: float, ttl_s: float) -> float:
    """... and while presence is steady (no process lease ran out, chat/presence.py): every
    member who left was seen leaving and marked by their socket's close, so the full round
    only catches a mark that could not be written (PostgreSQL or Redis failing at that
    moment): a quarter of the grace late at most."""
    return max(full_sweep_interval(grace_s, ttl_s), grace_s / 4)


class MemberGrace:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.grace_s = services.settings.member_grace_s
        # Whether the last full round here decided about every member at stake: presence
        # had settled (so it could mark anyone offline away), or it found nobody offline.
        self._decided = False

    async def run(self) -> None:
        every = sweep_interval(self.grace_s, self.s.settings.presence_ttl_s)
        full_every = full_sweep_interval(self.grace_s, self.s.settings.presence_ttl_s)
        steady_every = steady_sweep_interval(self.grace_s, self.s.settings.presence_ttl_s)
        while True:
            await ticks.sleep(every)  # on the process's tick (chat/ticks.py)
            try:
                await self.take_round(every, full_every, steady_every)
            except (RedisError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("member grace sweep skipped: %s", type(exc).__name__)
            except Exception:
                log.exception("member grace sweep failed")

    async def take_round(
        self, every: float, full_every: float, steady_every: float | None = None
    ) -> bool | None:
        """This interval's round, if this process has its turn (chat/upkeep/turns.py): None
        if another process has it, else whether the round was a full one. A full round is
        due every `full_every`, but while presence is steady (`Presence.steady`: no process
        died or stalled in the last three of them) only every `steady_every`: at 4,000 idle
        sockets the full round (every member at stake read from PostgreSQL and asked of
        Redis, 2,000 of them) was ~10 % of the turn-holder's idle CPU. Any full round,
        steady or not, starts the steady interval, if it decided about every member at
        stake (`_decided`): one while presence has not settled marks nobody (a member
        offline then may only not be written back yet), so while it found someone offline
        it stands for no full round, and the next, once presence is steady, still comes.

        The full rounds keep one clock for every process, their own turn: the first round
        after it lapsed is full, whichever process runs it. Each process used to keep its
        own clock, so the process whose full round was due could lose the interval's turn to
        one that was not due, whose round was then a light one: a member whose process died
        was noticed intervals late."""
        if not await take_turn(self.s.redis, "member-grace", every):
            return None
        full = await take_turn(self.s.redis, "member-grace-full", full_every)
        # The steady interval, where it is longer than the full one.
        steady_s = steady_every if full and steady_every is not None and steady_every > full_every else None
        if steady_s is not None and await self.s.presence.steady(time.time(), 3 * full_every):
            full = await take_turn(self.s.redis, "member-grace-steady", steady_s)
        self._decided = False
        await self.sweep_once(full=full)
        if steady_s is not None and full and self._decided:
            # Every full round that decided about everyone starts the steady interval,
            # steady or not. (Only the steady ones did: after a start, presence is not
            # steady for a TTL, and the first full round once it was came right after one
            # that was not: two at 2,000 members within ~30 s, performance.md round 11.)
            # One before presence settled that found someone offline marked nobody: the
            # member whose process died meanwhile is found by the next full round, due at
            # `full_every` as before, not a `steady_every` after this one.
            await take_turn(self.s.redis, "member-grace-steady", steady_s)
        return full

    async def sweep_once(self, *, full: bool = True) -> int:
        """One round under the sweep lock; returns how many requests and conversations it closed.
        `full=False`: a round with nobody marked away does nothing (see `sweep`), and asks
        that before it opens the round's transaction and takes its lock (four statements
        every interval for nothing, on an idle service)."""
        if not full and not await store.away_since(self.s.db):
            return 0
        # A transaction-level lock, held by a transaction left open for the round: it pins
        # one server session even behind a transaction pooler (PgBouncer), where a session
        # lock and its unlock could land on different sessions and the lock never free. The
        # round's own statements run on other pooled connections; commit releases it.
        async with self.s.db.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
                return 0
            return await self.sweep(time.time(), full=full)

    async def _online(self, member_ids: list[str], now: float) -> set[str]:
        presence = self.s.presence
        online: set[str] = set()
        for i in range(0, len(member_ids), _ONLINE_BATCH):
            online |= await presence.online_among(member_ids[i : i + _ONLINE_BATCH], "member", now)
        return online

    async def sweep(self, now: float, *, full: bool = True) -> int:
        """`full=False` while nobody is marked away: nothing to time, and members whose process
        died without a word are found by the full rounds (`full_sweep_interval`), so an idle
        service does not ask presence about every member at stake every few seconds (at
        4,000 idle sockets this sweep was the largest periodic cost of a web process)."""
        db, presence, hub = self.s.db, self.s.presence, self.s.hub
        # Every mark, read first (none, on an idle service): the marks this round drops or
        # clears are among these, so neither statement ships every member at stake to
        # PostgreSQL (two arrays of 2,000 ids a full round, at the bench's idle load).
        away = await store.away_since(db)
        if not full and not away:
            return 0
        settled = await presence.settled(now)
        stake = await store.members_at_stake(db)
        ids = sorted(stake)
        # Marks of members with nothing at stake any more. One written since `away` was
        # read is dropped by the next round (which it makes work: it reads as someone away).
        leftovers = sorted(m for m in away if m not in stake)
        if leftovers:
            await store.forget_away(db, leftovers)
        if not ids:
            self._decided = full
            return 0
        online = await self._online(ids, now)
        # Marked away, yet online with no new connection (their process had stalled or lost
        # Redis past the presence TTL, and came back): the specialist was told
        # `reconnecting` by a round like this one, and nothing else takes it back. A mark
        # written since `away` was read (a close's, `member_left`) is left to the next
        # round, which reads it (and runs because of it: someone is away).
        returned = sorted(m for m in online if m in away)
        for member_id in await store.clear_away(db, returned) if returned else []:
            for conversation_id, specialist_id in stake[member_id].conversations:
                back = f.PeerStatus(conversation_id=conversation_id, status="connected")
                hub.to_user(specialist(specialist_id), back)
        offline = [m for m in ids if m not in online]
        # A full round decided about everyone unless it found someone offline it could not
        # mark, presence not settled yet (`take_round`).
        self._decided = full and (settled or not offline)
        if not offline:
            return 0
        if settled:
            # Nobody saw these members leave (their process died): the grace starts now.
            for member_id in await store.mark_away(db, offline):
                for conversation_id, specialist_id in stake[member_id].conversations:
                    hub.to_user(
                        specialist(specialist_id),
                        f.PeerStatus(conversation_id=conversation_id, status="reconnecting"),
                    )
        closed = 0
        for member_id, since in (await store.away_since(db, offline)).items():
            if now - since.timestamp() < self.grace_s:
                continue
            if await presence.is_online(member_id, "member", time.time()):
                continue  # came back a moment ago
            closed += await self._let_go(member_id, stake[member_id])
        return closed

    async def _let_go(self, member_id: str, stake: store.Stake) -> int:
        closed = 0
        hub = self.s.hub
        for request_id in stake.requests:
            revoked = await store.abandon_request(self.s.db, request_id)
            if revoked is None:
                continue  # matched, cancelled or claimed meanwhile
            closed += 1
            METRICS.member_gone.labels("request").inc()
            log.info("request %s cancelled: the member did not return within the grace", request_id[:8])
            for offer in revoked:
                hub.to_user(
                    specialist(offer.specialist_id), f.OfferRevoked(offer_id=offer.id, reason="cancelled")
                )
            await self.s.poke_matchmaker()
        for conversation_id, specialist_id in stake.conversations:
            ended = await end_conversation(self.s, conversation_id, by="system", reason="peer_gone")
            if ended is not None:
                closed += 1
                METRICS.member_gone.labels("conversation").inc()
                hub.to_user(
                    specialist(specialist_id), f.PeerStatus(conversation_id=conversation_id, status="gone")
                )
                log.info(
                    "conversation %s ended: the member did not return within the grace", conversation_id[:8]
                )
        return closed
