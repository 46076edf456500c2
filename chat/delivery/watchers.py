"""What the matching leader tells watchers after each cycle: specialists watching the queue
get it when its order changed (or every 10 s), supervisors get `queue_stats` when they
changed (or every 5 s while the leader cycles; an idle leader cycles only when poked, see
chat/matchmaker.py), at most four times a second."""

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
        self._last_stats: f.QueueStats | None = None
        self._last_stats_at = 0.0

    def forget_stats(self) -> None:
        """The next stats go out even if unchanged (a watcher was sent another reading)."""
        self._last_stats = None

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
        entries = [views.queue_entry(r, now_dt, away) for r in requests if r.state == RequestState.WAITING]
        same = self._last_queue is not None and [e.request_id for e in entries] == [
            e.request_id for e in self._last_queue
        ]
        if not same or now - self._last_queue_at > 10:
            self._last_queue, self._last_queue_at = entries, now
            await hub.broadcast(QUEUE_CHANNEL, f.Queue(requests=entries))
        wait = STATS_MIN_INTERVAL_S - (now - self._last_stats_at)
        if wait > 0:
            # Coalesced: come back when the interval is up, or supervisors would see this
            # change only at the next idle re-read, seconds later.
            asyncio.get_running_loop().call_later(wait, self._again)
            return
        active = await conversations.active_count(self.s.db)
        # The leader raises long waits (once each) and shows every open alert, from PostgreSQL.
        await alerting.long_waits(self.s.db, requests, now_dt)
        alerts = await alerting.open_alert_frames(self.s.db)
        current = stats_view.queue_stats(requests, specialists, online, active, now_dt, alerts)
        if current != self._last_stats or now - self._last_stats_at > 5:
            self._last_stats, self._last_stats_at = current, now
            await hub.broadcast(STATS_CHANNEL, current)
