"""What one `web` process holds for its lifetime, opened in the app's lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from chat.admission import Admission
from chat.bus import Bus
from chat.config import Settings
from chat.delivery.hub import POKE_CHANNEL, Hub
from chat.people import Participants
from chat.presence import Presence
from chat.redisconn import RedisClient
from chat.safety.monitoring import MonitorMirror
from chat.store.appender import Appender

# (request id, now) → (position, estimated wait) if this process leads matching and knows
# the request, else None: the matchmaker's reader, handed in by the app's wiring.
QueuePositions = Callable[[str, float], "tuple[int, int] | None"]


# The poke that also asks the matching leader to send its next `queue_stats` even if
# unchanged (`Services.restate_stats`); any other payload is a plain poke.
RESTATE_STATS = b"stats"
# The poke that tells the matching leader a process has a queue watcher again: its queue
# broadcasts, skipped while nobody listened, resume (chat/delivery/watchers.py).
QUEUE_WATCHED = b"queue"

# Conversation pairs `Services.participants` holds at most: past that the oldest cached is
# dropped (a miss costs one PostgreSQL read, chat/handlers/conversation.py).
PARTICIPANTS_MAX = 50_000

# Of the pool's 20 connections (chat/store/db.py), what `request` handlers may hold at once.
REQUESTS_AT_ONCE = 12


def remember_pair(cache: dict[str, Participants], conversation_id: str, pair: Participants) -> None:
    """Cache a conversation's pair in `Services.participants`, dropping the oldest cached
    past PARTICIPANTS_MAX (insertion order: dicts keep it). Called on a cache miss, an
    accept, a hand-over, a welcome; never per message."""
    if conversation_id not in cache and len(cache) >= PARTICIPANTS_MAX:
        del cache[next(iter(cache))]
    cache[conversation_id] = pair


def _nothing() -> None:
    return None


def _unknown(request_id: str, now: float) -> tuple[int, int] | None:
    return None


@dataclass
class Services:
    settings: Settings
    db: asyncpg.Pool[asyncpg.Record]
    redis: RedisClient
    bus: Bus
    hub: Hub
    presence: Presence
    appender: Appender
    # Who may hold a socket and until when: revocations, the socket cap, `exp`, `reauth`.
    admission: Admission
    # Narrow ports to this process's matchmaker (chat/matchmaker.py), set by chat/lifespan.py:
    # wake it, and ask it where a request stands. Services never holds the matchmaker.
    wake_matchmaker: Callable[[], None] = _nothing
    restate_matchmaker_stats: Callable[[], None] = _nothing
    queue_watched_here: Callable[[], None] = _nothing
    queue_position: QueuePositions = _unknown
    draining: bool = False
    # conversation id → (member, specialist), each the pair (role, sub) (chat/people.py):
    # never changes, so safe to cache. Added only by `remember_pair` (bounded), dropped when
    # the conversation ends on this process (chat/delivery/ended.py), is erased or handed
    # over, and cleared after a bus reconnect.
    participants: dict[str, Participants] = field(default_factory=dict)
    # The online specialists Redis last named here (chat/stats.py): what `watch_queues`
    # counts while Redis does not answer.
    online_seen: set[str] = field(default_factory=set)
    # Who watches which live conversation (chat/safety/monitoring.py), mirrored from PostgreSQL.
    monitors: MonitorMirror = field(default_factory=MonitorMirror)
    # `request` handlers storing a request at once, at most (chat/handlers/queue.py): a burst's
    # thousands otherwise fill the pool's line, and the accepts that complete their matches
    # (and every message) waited seconds behind them for a connection.
    storing_requests: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(REQUESTS_AT_ONCE))

    async def poke_matchmaker(self) -> None:
        """Something the matchmaker should look at happened (here or, via the bus, anywhere)."""
        self.wake_matchmaker()
        await self.bus.publish(POKE_CHANNEL, b"")

    async def restate_stats(self) -> None:
        """A supervisor started watching and was sent `queue_stats` read now (here, not by
        the leader): the leader's next stats must reach them even if equal to the last it
        sent, or a change back to that (available, then away again within one coalescing
        window) would never be shown to them (PRODUCT.md: "now and whenever it changes")."""
        self.restate_matchmaker_stats()
        await self.bus.publish(POKE_CHANNEL, RESTATE_STATS)

    async def queue_watched(self) -> None:
        """This process subscribed to the queue broadcasts for its first watcher: the
        leader, which stops sending them while nobody listens, must send them again."""
        self.queue_watched_here()
        await self.bus.publish(POKE_CHANNEL, QUEUE_WATCHED)
