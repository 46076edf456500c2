"""What the matching leader tells watchers after each cycle: specialists watching the queue
get it when its order changed (or every 10 s), supervisors get `queue_stats` when they
changed (or every 5 s while the leader cycles; an idle leader cycles only when poked, see
chat/matchmaker.py), at most four times a second.

`queue_stats` are not built while no supervisor listens either (two PostgreSQL reads and
the counts, up to four times a second): once a publish of them reached no process and none
here watches, only the 5 s resend is built, until a supervisor's `watch_queues` asks for a
restatement (`Services.restate_stats`, which every watch sends). The leader still raises
long-wait alerts at every cycle: they are stored, for supervisors who come later.

The queue is not even built while nobody listens: its last publish reached no process and
none here watches. A process that gets its first watcher subscribes, then says so
(`Services.queue_watched`), and the next cycle sends the queue again; so does a bus
reconnect (chat/lifespan.py: a watcher may have come, or a publish reached nobody, while
Redis was away). A leader that missed that poke finds out at the 10 s resend, which still
goes out. A new leader sends until a publish tells it otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from chat import stats as stats_view
from chat import views
from chat.delivery.hub import QUEUE_CHANNEL, STATS_CHANNEL
from chat.safety import alerting
from chat.services import Services
from chat.store import conversations, profiles, queue
from matching.lifecycle import RequestState
from protocol import frames as f

STATS_MIN_INTERVAL_S = 0.25


class Broadcasts:
    def __init__(self, services: Services, again: Callable[[], None]) -> None:
        """`again`: wakes the leader for another cycle (a coalesced stats update is due)."""
        self.s = services
        self._again = again
        self._last_queue: list[f.QueueEntry] | None = None
        self._last_queue_at = 0.0
        # Whether the last queue publish reached a process, and which `queue_watched` it was
        # sent after: an answer to a publish sent before a watcher came is no answer.
        self._queue_heard = True
        self._queue_watch_round = 0
        self._last_stats: f.QueueStats | None = None
        self._last_stats_at = 0.0
        # The same for the stats: whether their last publish reached a process, and which
        # `forget_stats` (a restatement: a supervisor began watching) it was sent after.
        self._stats_heard = True
        self._stats_round = 0
        self._looked_at = 0.0  # long waits last looked for, while nobody listens

    def queue_watched(self) -> None:
        """A process has a queue watcher again: the next cycle sends the queue."""
        self._queue_heard = True
        self._queue_watch_round += 1
        self._last_queue = None

    def _heard(self, watch_round: int) -> Callable[[int], None]:
        def heard(receivers: int) -> None:
            if watch_round == self._queue_watch_round:
                self._queue_heard = receivers > 0

        return heard

    def _stats_heard_by(self, stats_round: int) -> Callable[[int], None]:
        def heard(receivers: int) -> None:
            if stats_round == self._stats_round:
                self._stats_heard = receivers > 0

        return heard

    def forget_stats(self) -> None:
        """The next stats go out even if unchanged (a watcher was sent another reading),
        and are built again until a publish says nobody listens."""
        self._last_stats = None
        self._stats_heard = True
        self._stats_round += 1

    async def after_cycle(
        self,
        requests: list[queue.Request],
        specialists: list[profiles.Profile],
        online: set[str],
        away: Collection[str],
        now: float,
    ) -> None:
        """`away`: members with no live connection (the queue entries say so)."""
        hub = self.s.hub
        now_dt = datetime.fromtimestamp(now, UTC)
        due = now - self._last_queue_at > 10
        if due or self._queue_heard or hub.queue_watchers:
            waiting = [r for r in requests if r.state == RequestState.WAITING]
            entries = [views.queue_entry(r, now_dt, away) for r in waiting]
            same = self._last_queue is not None and [e.request_id for e in entries] == [
                e.request_id for e in self._last_queue
            ]
            if not same or due:
                self._last_queue, self._last_queue_at = entries, now
                heard = self._heard(self._queue_watch_round)
                await hub.broadcast(QUEUE_CHANNEL, f.Queue(requests=entries), on_receivers=heard)
        wait = STATS_MIN_INTERVAL_S - (now - self._last_stats_at)
        if wait > 0:
            # Coalesced: come back when the interval is up, or supervisors would see this
            # change only at the next idle re-read, seconds later.
            asyncio.get_running_loop().call_later(wait, self._again)
            return
        resend = now - self._last_stats_at > 5
        listened = resend or self._stats_heard or bool(hub.stats_watchers)
        if not listened and now - self._looked_at < STATS_MIN_INTERVAL_S:
            return
        self._looked_at = now
        # The leader raises long waits (once each), watched or not: alerts are stored.
        await alerting.long_waits(self.s.db, requests, now_dt)
        if not listened:
            return  # nobody listens: see the module's docstring
        active = await conversations.active_count(self.s.db)
        # Every open alert, from PostgreSQL.
        alerts = await alerting.open_alert_frames(self.s.db)
        current = stats_view.queue_stats(requests, specialists, online, active, now_dt, alerts)
        if current != self._last_stats or resend:
            self._last_stats, self._last_stats_at = current, now
            heard = self._stats_heard_by(self._stats_round)
            await hub.broadcast(STATS_CHANNEL, current, on_receivers=heard)
