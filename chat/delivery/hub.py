"""This process's live sockets by user, and the doorbell that reaches every other process.

`to_user()` delivers to the person's sockets here at once and rings the person's channel
for the others; a process ignores its own rings. Each ring carries the encoded frame with a
small header (origin, conversation, seq) so receivers need not parse it
(chat/delivery/doorbell.py).

Nothing on the bus is readable (PRODUCT.md §2): channels are keyed names and frames are
sealed (chat/delivery/channels.py). Sockets are grouped by the pair (role, sub)
(chat/people.py): a member and a specialist with the same `sub` share nothing here. A ring
lost while Redis is down is repaired by sequence: the next message, a resume, or the catch-up
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

import uuid
from collections import defaultdict

from chat.bus import Bus, Receivers
from chat.delivery import doorbell
from chat.delivery.channels import USER_PREFIX, Channels, Namer
from chat.delivery.doorbell import Mark
from chat.delivery.solo import Solo
from chat.gateway.ordering import CHANGES
from chat.gateway.session import CatchUp, Outbound, Session
from chat.people import Person
from chat.seal import Sealer
from protocol.codec import encode
from protocol.codes import CloseCode
from protocol.frames import Frame

# Their payloads are sealed (chat/seal.py). The names changed with the seal, so that during
# a rolling upgrade a process of the version before, which would hand a payload to its
# watchers as it came, never hears a sealed one (nor the new ones its clear ones).
QUEUE_CHANNEL = "pc:sealed:queue"  # manual-pick watchers: the waiting list changed
STATS_CHANNEL = "pc:sealed:stats"  # supervisors: queue_stats changed
POKE_CHANNEL = "pc:poke"  # the matchmaker: something it should look at happened


class Hub:
    def __init__(self, bus: Bus, name: Namer, sealer: Sealer) -> None:
        self.origin = uuid.uuid4().hex[:12]
        self.bus = bus
        self._channels = Channels(name, sealer)
        # Channel → person, for the people with a socket here (rings name only channels).
        self._people: dict[str, Person] = {}
        self.sessions: defaultdict[Person, set[Session]] = defaultdict(set)
        self.queue_watchers: set[Session] = set()
        self.stats_watchers: set[Session] = set()
        self._last_seqs: dict[str, int] = {}
        # Who is held only here, and their skipped rings (chat/delivery/solo.py).
        self._solo = Solo()

    @property
    def rings_unopened(self) -> int:
        """Rings this process could not open (another key, forged)."""
        return self._channels.unopened

    @property
    def rings_skipped(self) -> int:
        """Message rings not sent because only this process holds the person (tests, bench)."""
        return self._solo.rings_skipped

    # ------------------------------------------------------------------ names

    def channel(self, person: Person) -> str:
        """The person's bus channel: an opaque name, the same on every process."""
        return self._channels.of(person)

    def forget_keyed(self, keyed: str) -> None:
        """An erased person's cached channel name goes (chat/privacy/forgetting.py)."""
        self._channels.forget_keyed(keyed)

    def sessions_of(self, person: Person) -> set[Session]:
        return self.sessions.get(person, set())

    # ------------------------------------------------------------------ sockets

    async def attach(self, session: Session, person: Person | None = None) -> None:
        """Call before reading the user's state, so nothing falls between read and ring.
        `person`: a second delivery name for this socket (a supervisor's watch,
        chat/safety/monitoring.py); by default the socket's own person."""
        person = person or session.person
        first = not self.sessions[person]
        self.sessions[person].add(session)
        CHANGES.count += 1  # the delivery repair's question has one more socket in it
        if first:
            self._solo.changed()
            channel = self.channel(person)
            self._people[channel] = person
            await self.bus.subscribe(channel)  # returns once Redis confirmed it (or gave up)
            self.bus.post(channel, doorbell.join_ring(self.origin))

    async def detach(self, session: Session, person: Person | None = None) -> None:
        if person is None:
            if session in self.queue_watchers:
                self.queue_watchers.discard(session)
                if not self.queue_watchers:
                    # So the leader's publishes count no listener here (chat/delivery/watchers.py).
                    await self.bus.unsubscribe(QUEUE_CHANNEL)
            self.stats_watchers.discard(session)
        person = person or session.person
        mine = self.sessions.get(person)
        if mine is None:
            return
        mine.discard(session)
        CHANGES.count += 1
        if not mine:
            del self.sessions[person]
            self._solo.changed()
            self._solo.forget(person)
            channel = self.channel(person)
            self._people.pop(channel, None)
            await self.bus.unsubscribe(channel)

    def all_sessions(self) -> list[Session]:
        # A watching supervisor's socket is attached under two names: count it once.
        return list({s: None for group in self.sessions.values() for s in group})

    # ------------------------------------------------------------------ delivery

    def to_user(
        self,
        person: Person,
        frame: Frame | bytes,
        *,
        conversation_id: str | None = None,
        seq: int | None = None,
        starts_conversation: bool = False,
        ends_conversation: bool = False,
        skip: Session | None = None,
    ) -> None:
        """To every socket of the person, on every process, without waiting: the sockets
        here get it now, and the ring for the others is posted, not awaited (Redis's
        answer matters only to the solo bookkeeping). `skip`: a socket here that already
        got its own copy (the direct reply, with its `ref`)."""
        data = frame if isinstance(frame, bytes) else encode(frame)
        out = Outbound(data, conversation_id, seq, starts_conversation, ends_conversation)
        self._deliver_local(person, out, skip)
        if out.seq is not None and person in self._solo and self.bus.healthy:
            self._solo.skip(person, out)  # its header is made only if it is ever rung
            return
        header = doorbell.frame_header(self.origin, out)
        channel = self._channels.of(person)
        if out.seq is None:
            self.bus.post(channel, self._channels.ring(channel, header, data))
        elif person in self.sessions and self.bus.confirmed(channel):
            sent_at = self._solo.changes
            self.bus.post(
                channel,
                self._channels.ring(channel, header, data),
                lambda receivers: self._learn(person, sent_at, receivers),
            )
        else:
            self.bus.post(channel, self._channels.ring(channel, header, data))

    def _learn(self, person: Person, sent_at: int, receivers: int) -> None:
        """The PUBLISH reached `receivers` subscribers. One, with our SUBSCRIBE confirmed
        before it went out and nothing changed since: only we hold the channel."""
        still_ours = person in self.sessions and self.bus.confirmed(self.channel(person))
        self._solo.learn(person, sent_at, receivers, still_ours=still_ours)

    def _unsolo(self, person: Person) -> None:
        """Someone else holds the channel now (or may): ring again, and re-send what was
        skipped lately so a newcomer that subscribed meanwhile gets it."""
        channel = self.channel(person)
        for out in self._solo.end(person):
            header = doorbell.frame_header(self.origin, out)
            self.bus.post(channel, self._channels.ring(channel, header, out.data))

    def bus_reconnected(self, only: frozenset[str] | None = None) -> None:
        """A bus outage may have hidden a newcomer's join: no one is solo any more, what was
        skipped is sent, and this process joins every channel it holds again. `only`: the
        channels the outage touched (a cluster bus's partitions), None: all."""
        self._solo.changed()
        for person in self._solo.everyone():
            if only is None or self.channel(person) in only:
                self._unsolo(person)
        for person in self.sessions:
            if only is None or self.channel(person) in only:
                self.bus.post(self.channel(person), doorbell.join_ring(self.origin))

    def close_user(self, person: Person, code: int) -> None:
        """Close every socket of the person with `code`, here now and on every other
        process through the person's channel (after the frames already rung to it)."""
        self._close_local(person, code)
        channel = self.channel(person)
        self.bus.post(channel, self._channels.ring(channel, doorbell.close_header(self.origin, code), b""))

    def _close_local(self, person: Person, code: int) -> None:
        for session in list(self.sessions.get(person, ())):
            session.refuse(code, "closed by the server")

    async def broadcast(self, channel: str, frame: Frame, on_receivers: Receivers | None = None) -> None:
        """To every process's watchers of `channel` (QUEUE_CHANNEL or STATS_CHANNEL).
        `on_receivers`: told how many processes were subscribed, if it went out (then the
        publish is not awaited, only queued in order)."""
        data = encode(frame)
        self._deliver_watchers(channel, data)
        ring = self._channels.ring(channel, doorbell.frame_header(self.origin, Outbound(data)), data)
        if on_receivers is not None:
            self.bus.post(channel, ring, on_receivers)
        else:
            await self.bus.publish(channel, ring)

    def on_bus(self, channel: str, data: bytes) -> None:
        ring = doorbell.parse(data)
        if ring is None or ring.origin == self.origin:
            return
        header, out = ring.header, ring.out
        if channel.startswith(USER_PREFIX):
            person = self._people.get(channel)
            if person is None:
                return  # nobody of that channel here (any more)
            if ring.mark is Mark.JOIN:
                self._solo.changed()
                self._unsolo(person)
                return
            opened = self._channels.open(channel, header, out.data)
            if opened is None:
                return
            if ring.mark is Mark.CLOSE:
                # Sealed (empty) like any frame: someone who can write to Redis cannot
                # close a person's sockets.
                self._close_local(person, ring.code or CloseCode.FORBIDDEN)
                return
            # The opened frame in place of the sealed one (not dataclasses.replace: 1.5 µs
            # against 0.1 on every ring received).
            out.data = opened
            self._deliver_local(person, out)
        elif channel in (QUEUE_CHANNEL, STATS_CHANNEL):
            opened = self._channels.open(channel, header, out.data)
            if opened is not None:
                self._deliver_watchers(channel, opened)

    def _deliver_local(self, person: Person, out: Outbound, skip: Session | None = None) -> None:
        for session in list(self.sessions.get(person, ())):
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
        if not earlier:
            return 0  # nothing was behind a round ago (seqs are ≥ 0): the idle case, no loop
        behind = 0
        for session in self.all_sessions():
            handed_on = session.handed_on
            for conversation_id, seen in list(session.seen.items()):
                if earlier.get(conversation_id, 0) > seen and conversation_id not in handed_on:
                    session.deliver(CatchUp(conversation_id))
                    behind += 1
        return behind

    def catch_up_everyone(self, only: frozenset[str] | None = None) -> None:
        """After the bus was down: every socket re-reads its conversations from PostgreSQL;
        with `only`, the sockets of the people whose channel is among those."""
        if only is None:
            sessions = self.all_sessions()
        else:
            touched = (group for person, group in self.sessions.items() if self.channel(person) in only)
            sessions = list({s: None for group in touched for s in group})
        for session in sessions:
            for conversation_id in list(session.seen):
                session.deliver(CatchUp(conversation_id))
