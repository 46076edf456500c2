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
    """`queue_stats` now, then whenever it changes (PRODUCT.md §5).

    The reply goes first and never waits on Redis: the subscribe and the word to the leader
    wait for it (seconds while it hangs), and who is online is asked of it for at most
    `stats.ONLINE_WAIT_S`, then counted from what this process last heard. Nothing is lost
    by it: the restatement that follows the subscribe makes the leader's next stats reach
    this watcher even if unchanged. The watcher joins the set before any await, so a second
    watch within the first's subscribe does not take itself for the first."""
    first = not services.hub.stats_watchers
    services.hub.stats_watchers.add(session)
    current = await stats.current_stats(services, online_wait_s=stats.ONLINE_WAIT_S)
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
    if first:
        await services.bus.subscribe(STATS_CHANNEL)
    await services.restate_stats()
