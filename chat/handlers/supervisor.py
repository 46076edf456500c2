"""A supervisor's side: the live queue statistics."""

from __future__ import annotations

from chat import stats
from chat.delivery.hub import STATS_CHANNEL
from chat.gateway.session import Session
from chat.handlers.registry import handles
from chat.services import Services
from protocol import frames as f


@handles(f.WatchQueues, "supervisor")
async def on_watch_queues(services: Services, session: Session, frame: f.WatchQueues) -> None:
    if not services.hub.stats_watchers:
        await services.bus.subscribe(STATS_CHANNEL)
    services.hub.stats_watchers.add(session)
    current = await stats.current_stats(services)
    session.push_frame(
        f.QueueStats(
            waiting=current.waiting,
            longest_wait_s=current.longest_wait_s,
            by_tag=current.by_tag,
            specialists=current.specialists,
            active_conversations=current.active_conversations,
            alerts=current.alerts,
            ref=frame.ref,
        )
    )
    await services.restate_stats()
