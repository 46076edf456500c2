"""This process's live sockets by user, and the doorbell that reaches every other process.

`to_user()` delivers to the user's sockets here at once and rings the user's channel for
the others; a process ignores its own rings. Each ring carries the encoded frame with a
small header (origin, conversation, seq) so receivers need not parse it. A ring lost
while Redis is down is repaired by sequence: the next message, a resume, or the catch-up
that follows a bus reconnect reads what is missing from PostgreSQL.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict

from chat.bus import Bus
from chat.session import CatchUp, Outbound, Session
from protocol.codec import encode
from protocol.frames import Frame

log = logging.getLogger("peerchat.hub")

QUEUE_CHANNEL = "pc:queue"  # manual-pick watchers: the waiting list changed
STATS_CHANNEL = "pc:stats"  # supervisors: queue_stats changed
POKE_CHANNEL = "pc:poke"  # the matchmaker: something it should look at happened


def user_channel(user_id: str) -> str:
    return f"pc:user:{user_id}"


def _header(origin: str, out: Outbound) -> bytes:
    conv = out.conversation_id or ""
    seq = "" if out.seq is None else str(out.seq)
    mark = "1" if out.starts_conversation else "2" if out.ends_conversation else ""
    return f"{origin}|{conv}|{seq}|{mark}\n".encode()


def _parse(data: bytes) -> tuple[str, Outbound] | None:
    head, sep, body = data.partition(b"\n")
    if not sep:
        return None
    try:
        origin, conv, seq, mark = head.decode().split("|")
        return origin, Outbound(body, conv or None, int(seq) if seq else None, mark == "1", mark == "2")
    except ValueError:
        return None


class Hub:
    def __init__(self, bus: Bus) -> None:
        self.origin = uuid.uuid4().hex[:12]
        self.bus = bus
        self.sessions: defaultdict[str, set[Session]] = defaultdict(set)
        self.queue_watchers: set[Session] = set()
        self.stats_watchers: set[Session] = set()
        self._last_seqs: dict[str, int] = {}

    # ------------------------------------------------------------------ sockets

    async def attach(self, session: Session) -> None:
        """Call before reading the user's state, so nothing falls between read and ring."""
        first = not self.sessions[session.user_id]
        self.sessions[session.user_id].add(session)
        if first:
            await self.bus.subscribe(user_channel(session.user_id))

    async def detach(self, session: Session) -> None:
        self.queue_watchers.discard(session)
        self.stats_watchers.discard(session)
        mine = self.sessions.get(session.user_id)
        if mine is None:
            return
        mine.discard(session)
        if not mine:
            del self.sessions[session.user_id]
            await self.bus.unsubscribe(user_channel(session.user_id))

    def all_sessions(self) -> list[Session]:
        return [s for group in self.sessions.values() for s in group]

    # ------------------------------------------------------------------ delivery

    async def to_user(
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
        """To every socket of the user, on every process. `skip`: a socket here that already
        got its own copy (the direct reply, with its `ref`)."""
        data = frame if isinstance(frame, bytes) else encode(frame)
        out = Outbound(data, conversation_id, seq, starts_conversation, ends_conversation)
        self._deliver_local(user_id, out, skip)
        # Not awaited: the caller's next step (the peer's copy, say) must not wait for Redis.
        self.bus.post(user_channel(user_id), _header(self.origin, out) + data)

    async def broadcast(self, channel: str, frame: Frame) -> None:
        """To every process's watchers of `channel` (QUEUE_CHANNEL or STATS_CHANNEL)."""
        data = encode(frame)
        self._deliver_watchers(channel, data)
        await self.bus.publish(channel, _header(self.origin, Outbound(data)) + data)

    def on_bus(self, channel: str, data: bytes) -> None:
        parsed = _parse(data)
        if parsed is None:
            return
        origin, out = parsed
        if origin == self.origin:
            return
        if channel.startswith("pc:user:"):
            self._deliver_local(channel.removeprefix("pc:user:"), out)
        elif channel in (QUEUE_CHANNEL, STATS_CHANNEL):
            self._deliver_watchers(channel, out.data)

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
