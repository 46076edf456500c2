"""This process's live sockets by user, and the doorbell that reaches every other process.

`to_user()` delivers to the user's sockets here at once and rings the user's channel for
the others; a process ignores its own rings. Each ring carries the encoded frame with a
small header (origin, conversation, seq) so receivers need not parse it
(chat/delivery/doorbell.py). A ring lost
while Redis is down is repaired by sequence: the next message, a resume, or the catch-up
that follows a bus reconnect reads what is missing from PostgreSQL.

**Solo users.** Most users have one socket, so the ring for their channel would only come
back to the process that sent it (and be dropped). When a PUBLISH of a message ring was
received by exactly one subscriber, and that subscriber is this process (its SUBSCRIBE was
confirmed before the PUBLISH went out), the user is *solo* here and their message rings
are skipped. The first SUBSCRIBE of a user's channel is followed by a *join* ring; a
process that has the user solo then stops skipping and re-sends what it skipped in the
last REPLAY_S (receivers drop repeats by seq), which covers the moment between the
newcomer's SUBSCRIBE and the join reaching us. A bus reconnect ends every solo (and
re-sends the skipped rings, and joins again). Only `message` rings are ever skipped:
everything else always rings. See docs/decisions.md.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict, deque

from chat.bus import Bus
from chat.delivery import doorbell
from chat.delivery.doorbell import Mark
from chat.gateway.session import CatchUp, Outbound, Session
from chat.metrics import METRICS
from protocol.codec import encode
from protocol.codes import CloseCode
from protocol.frames import Frame

log = logging.getLogger("peerchat.hub")

QUEUE_CHANNEL = "pc:queue"  # manual-pick watchers: the waiting list changed
STATS_CHANNEL = "pc:stats"  # supervisors: queue_stats changed
POKE_CHANNEL = "pc:poke"  # the matchmaker: something it should look at happened


# Skipped rings kept for a newcomer: far longer than a join takes to arrive, and at most
# REPLAY_MAX per user so a flood cannot grow memory (a newcomer that misses one then
# fills the gap from PostgreSQL, as after any lost ring).
REPLAY_S = 2.0
REPLAY_MAX = 32


def user_channel(user_id: str) -> str:
    return f"pc:user:{user_id}"


class Hub:
    def __init__(self, bus: Bus) -> None:
        self.origin = uuid.uuid4().hex[:12]
        self.bus = bus
        self.sessions: defaultdict[str, set[Session]] = defaultdict(set)
        self.queue_watchers: set[Session] = set()
        self.stats_watchers: set[Session] = set()
        self._last_seqs: dict[str, int] = {}
        # Users whose channel only this process subscribes (see the module's docstring).
        self._solo: set[str] = set()
        self._skipped: dict[str, deque[tuple[float, bytes]]] = {}
        # Bumped by anything that could make a PUBLISH's receiver count stale: a join ring,
        # a user's first attach or last detach here, a bus reconnect. A reply counted
        # before such a change teaches nothing.
        self._changes = 0
        self.rings_skipped = 0  # for tests and the bench

    # ------------------------------------------------------------------ sockets

    async def attach(self, session: Session) -> None:
        """Call before reading the user's state, so nothing falls between read and ring."""
        first = not self.sessions[session.user_id]
        self.sessions[session.user_id].add(session)
        if first:
            self._changes += 1
            channel = user_channel(session.user_id)
            await self.bus.subscribe(channel)  # returns once Redis confirmed it (or gave up)
            self.bus.post(channel, doorbell.join_ring(self.origin))

    async def detach(self, session: Session) -> None:
        self.queue_watchers.discard(session)
        self.stats_watchers.discard(session)
        mine = self.sessions.get(session.user_id)
        if mine is None:
            return
        mine.discard(session)
        if not mine:
            del self.sessions[session.user_id]
            self._changes += 1
            self._solo.discard(session.user_id)
            self._skipped.pop(session.user_id, None)
            await self.bus.unsubscribe(user_channel(session.user_id))

    def all_sessions(self) -> list[Session]:
        return [s for group in self.sessions.values() for s in group]

    # ------------------------------------------------------------------ delivery

    def to_user(
        self,
        user_id: str,
        frame: Frame | bytes,
        *,
        conversation_id: str | None = None,
        seq: int | None = None,
        starts_conversation: bool = False,
        ends_conversation: bool = False,
        skip: Session | None = None,
    ) -> None:
        """To every socket of the user, on every process, without waiting: the sockets
        here get it now, and the ring for the others is posted, not awaited (Redis's
        answer matters only to the solo bookkeeping). `skip`: a socket here that already
        got its own copy (the direct reply, with its `ref`)."""
        data = frame if isinstance(frame, bytes) else encode(frame)
        out = Outbound(data, conversation_id, seq, starts_conversation, ends_conversation)
        self._deliver_local(user_id, out, skip)
        ring = doorbell.frame_ring(self.origin, out)
        channel = user_channel(user_id)
        if out.seq is None:
            self.bus.post(channel, ring)
        elif user_id in self._solo and self.bus.healthy:
            self._skip(user_id, ring)
        elif user_id in self.sessions and self.bus.confirmed(channel):
            sent_at = self._changes
            self.bus.post(channel, ring, lambda receivers: self._learn(user_id, sent_at, receivers))
        else:
            self.bus.post(channel, ring)

    def _learn(self, user_id: str, sent_at: int, receivers: int) -> None:
        """The PUBLISH reached `receivers` subscribers. One, with our SUBSCRIBE confirmed
        before it went out and nothing changed since: only we hold the channel."""
        if (
            receivers == 1
            and sent_at == self._changes
            and user_id in self.sessions
            and self.bus.confirmed(user_channel(user_id))
        ):
            self._solo.add(user_id)

    def _skip(self, user_id: str, ring: bytes) -> None:
        now = time.monotonic()
        kept = self._skipped.get(user_id)
        if kept is None:
            kept = self._skipped[user_id] = deque(maxlen=REPLAY_MAX)
        while kept and kept[0][0] < now - REPLAY_S:
            kept.popleft()
        kept.append((now, ring))
        self.rings_skipped += 1
        METRICS.rings_skipped.inc()

    def _unsolo(self, user_id: str) -> None:
        """Someone else holds the channel now (or may): ring again, and re-send what was
        skipped lately so a newcomer that subscribed meanwhile gets it."""
        self._solo.discard(user_id)
        kept = self._skipped.pop(user_id, None)
        if kept:
            channel = user_channel(user_id)
            horizon = time.monotonic() - REPLAY_S
            for at, ring in kept:
                if at >= horizon:
                    self.bus.post(channel, ring)

    def bus_reconnected(self) -> None:
        """A bus outage may have hidden a newcomer's join: no one is solo any more, what was
        skipped is sent, and this process joins every channel it holds again."""
        self._changes += 1
        for user_id in list(self._solo | set(self._skipped)):
            self._unsolo(user_id)
        for user_id in self.sessions:
            self.bus.post(user_channel(user_id), doorbell.join_ring(self.origin))

    def close_user(self, user_id: str, role: str, code: int) -> None:
        """Close every socket of the user in `role` with `code`, here now and on every other
        process through the user's channel (after the frames already rung to it). Only that
        role's: a specialist whose `sub` is the same is another person (PRODUCT.md §4)."""
        self._close_local(user_id, role, code)
        self.bus.post(user_channel(user_id), doorbell.close_ring(self.origin, role, code))

    def _close_local(self, user_id: str, role: str, code: int) -> None:
        for session in list(self.sessions.get(user_id, ())):
            if session.role == role:
                session.close_soon(code, "closed by the server")

    async def broadcast(self, channel: str, frame: Frame) -> None:
        """To every process's watchers of `channel` (QUEUE_CHANNEL or STATS_CHANNEL)."""
        data = encode(frame)
        self._deliver_watchers(channel, data)
        await self.bus.publish(channel, doorbell.frame_ring(self.origin, Outbound(data)))

    def on_bus(self, channel: str, data: bytes) -> None:
        ring = doorbell.parse(data)
        if ring is None or ring.origin == self.origin:
            return
        if channel.startswith("pc:user:"):
            user_id = channel.removeprefix("pc:user:")
            if ring.mark is Mark.JOIN:
                self._changes += 1
                self._unsolo(user_id)
                return
            if ring.mark is Mark.CLOSE:
                self._close_local(user_id, ring.role, ring.code or CloseCode.FORBIDDEN)
                return
            self._deliver_local(user_id, ring.out)
        elif channel in (QUEUE_CHANNEL, STATS_CHANNEL):
            self._deliver_watchers(channel, ring.out.data)

    def _deliver_local(self, user_id: str, out: Outbound, skip: Session | None = None) -> None:
        for session in list(self.sessions.get(user_id, ())):
            if session is not skip:
                session.deliver(out)

    def _deliver_watchers(self, channel: str, data: bytes) -> None:
        watchers = self.queue_watchers if channel == QUEUE_CHANNEL else self.stats_watchers
        for session in list(watchers):
            session.deliver(Outbound(data))

    def watched_conversations(self) -> set[str]:
        return {c for s in self.all_sessions() for c in s.seen}

    def repair(self, last_seqs: dict[str, int]) -> int:
        """Given PostgreSQL's last seq per conversation, send each socket that is behind a
        catch-up. This repairs a ring that was lost without the bus noticing (the sender's
        process died between commit and publish; a SUBSCRIBE raced a PUBLISH), which the
        next message would otherwise only repair if there is one. Returns how many.

        A socket is compared with the seqs PostgreSQL had one round *earlier*: under load
        many messages are committed but still on their way, and catching those up would
        only read from PostgreSQL what the doorbell is about to bring."""
        earlier, self._last_seqs = self._last_seqs, last_seqs
        behind = 0
        for session in self.all_sessions():
            for conversation_id, seen in list(session.seen.items()):
                if earlier.get(conversation_id, 0) > seen:
                    session.deliver(CatchUp(conversation_id))
                    behind += 1
        return behind

    def catch_up_everyone(self) -> None:
        """After the bus was down: every socket re-reads its conversations from PostgreSQL."""
        for session in self.all_sessions():
            for conversation_id in list(session.seen):
                session.deliver(CatchUp(conversation_id))
