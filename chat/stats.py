"""`queue_stats`, the supervisor's picture of load, from one snapshot of the queue; and
`current_stats`, that snapshot read now."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from chat import views
from chat.safety import alerting
from chat.services import Services
from chat.store import conversations, profiles, queue
from chat.store.profiles import Profile
from chat.store.queue import Request
from protocol import frames as f


def queue_stats(
    requests: list[Request],
    specialists: list[Profile],
    online: set[str],
    active_conversations: int,
    now: datetime,
    alerts: list[f.Alert],
) -> f.QueueStats:
    """`alerts`: the open ones, from PostgreSQL (chat/safety/alerting.py)."""
    waiting = [r for r in requests if r.state in ("waiting", "offered")]
    waits = {r.id: views.waited_s(r.created_at, now) for r in waiting}
    by_tag: dict[str, f.TagLoad] = {}
    for r in waiting:
        for tag in r.tags or ["(none)"]:
            load = by_tag.get(tag)
            wait = waits[r.id]
            by_tag[tag] = f.TagLoad(
                waiting=(load.waiting if load else 0) + 1,
                longest_wait_s=max(load.longest_wait_s if load else 0, wait),
            )
    counts = f.SpecialistCounts(
        # Busy: online and at capacity, whatever their status; available: could take one more.
        available=sum(
            1
            for p in specialists
            if p.id in online and p.status == "available" and p.active_chats < p.max_chats
        ),
        busy=sum(1 for p in specialists if p.id in online and p.active_chats >= p.max_chats),
        away=sum(
            1 for p in specialists if p.id in online and p.status == "away" and p.active_chats < p.max_chats
        ),
    )
    return f.QueueStats(
        waiting=len(waiting),
        longest_wait_s=max(waits.values(), default=0),
        by_tag=dict(sorted(by_tag.items())),
        specialists=counts,
        active_conversations=active_conversations,
        alerts=alerts,
    )


async def current_stats(services: Services) -> f.QueueStats:
    """Read now: the supervisor's `watch_queues` and GET /api/stats."""
    requests = await queue.open_requests(services.db)
    specialists = await profiles.list_all(services.db)
    online = await services.presence.online_specialists(time.time())
    active = await conversations.active_count(services.db)
    alerts = await alerting.open_alert_frames(services.db)
    return queue_stats(requests, specialists, online, active, datetime.now(UTC), alerts)
