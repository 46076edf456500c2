"""`queue_stats`, the supervisor's picture of load, from one snapshot of the queue (the one
definition; docs/protocol.md describes it); and `current_stats`, that snapshot read now.

- ``waiting``: open requests (waiting, or on offer to someone); ``longest_wait_s`` the
  oldest's whole seconds.
- ``by_tag``: the same two numbers per requested tag; a request counts under each of its
  tags, an untagged one under ``(none)``.
- ``specialists``, online ones only: ``busy`` at capacity (active chats ≥ ``max_chats``,
  pending offers not counted) whatever their status; ``available`` status available with
  a free slot; ``away`` status away with a free slot.
- ``alerts``: the open alerts from PostgreSQL, oldest first (chat/safety/alerting.py;
  docs/safety.md): raised once per event and open until a supervisor acknowledges them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from chat import views
from chat.safety import alerting
from chat.services import Services
from chat.store import conversations, profiles, queue
from chat.store.profiles import Profile
from chat.store.queue import Request
from matching.lifecycle import REQUEST_TRANSITIONS, RequestState, is_final
from protocol import frames as f

# Requests still in line: the lifecycle's states a request can leave.
OPEN_REQUEST_STATES = frozenset(s.value for s in RequestState if not is_final(REQUEST_TRANSITIONS, s))


def roster_state(profile: Profile, online: set[str]) -> str:
    """A specialist's state on the supervisor's roster, and what `queue_stats.specialists`
    counts (the one definition of both): `offline` when no device of theirs is online;
    `busy` when online and at capacity (active chats >= `max_chats`; pending offers do not
    count) whatever their status; otherwise their status, `available` or `away`."""
    if profile.id not in online:
        return "offline"
    if profile.active_chats >= profile.max_chats:
        return "busy"
    return "away" if profile.status == "away" else "available"


def queue_stats(
    requests: list[Request],
    specialists: list[Profile],
    online: set[str],
    active_conversations: int,
    now: datetime,
    alerts: list[f.Alert],
) -> f.QueueStats:
    """`alerts`: the open ones, from PostgreSQL (chat/safety/alerting.py)."""
    waiting = [r for r in requests if r.state in OPEN_REQUEST_STATES]
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
    states = [roster_state(p, online) for p in specialists]
    counts = f.SpecialistCounts(
        available=states.count("available"),
        busy=states.count("busy"),
        away=states.count("away"),
        # In wrap-up after a conversation (also counted above by their status).
        wrap_up=sum(1 for p in specialists if p.id in online and p.wrap_up_until and p.wrap_up_until > now),
    )
    return f.QueueStats(
        waiting=len(waiting),
        longest_wait_s=max(waits.values(), default=0),
        by_tag=dict(sorted(by_tag.items())),
        specialists=counts,
        active_conversations=active_conversations,
        alerts=alerts,
    )


async def waiting_now(services: Services) -> tuple[int, int]:
    """(`waiting`, `longest_wait_s`) as `queue_stats` counts them, from the open requests
    alone: the stats history's sample every 10 s, which used to read the whole roster (every
    specialist from PostgreSQL, every online one from Redis) for two numbers."""
    requests = await queue.open_requests(services.db)
    now = datetime.now(UTC)
    waiting = [r for r in requests if r.state in OPEN_REQUEST_STATES]
    return len(waiting), max((views.waited_s(r.created_at, now) for r in waiting), default=0)


# How long `watch_queues`'s first reply waits for Redis's word on who is online before it
# counts from what this process last heard (PRODUCT.md §5/§6: `queue_stats` "now"; while
# Redis hangs, a read waits seconds for the client's socket timeout).
ONLINE_WAIT_S = 0.25


async def current_stats(services: Services, *, online_wait_s: float | None = None) -> f.QueueStats:
    """Read now: the supervisor's `watch_queues` and GET /api/stats. With `online_wait_s`,
    the online specialists come from Redis if it answers within that, else from
    `online_fallback` (the read goes on and refreshes it)."""
    requests = await queue.open_requests(services.db)
    specialists = await profiles.list_all(services.db)
    if online_wait_s is None:
        online = await _online(services)
    else:
        online = await _online_within(services, online_wait_s)
    active = await conversations.active_count(services.db)
    alerts = await alerting.open_alert_frames(services.db)
    return queue_stats(requests, specialists, online, active, datetime.now(UTC), alerts)


async def _online(services: Services) -> set[str]:
    online = await services.presence.online_specialists(time.time())
    services.online_seen = online
    return online


async def _online_within(services: Services, wait_s: float) -> set[str]:
    read = asyncio.ensure_future(_online(services))
    read.add_done_callback(_settled)
    await asyncio.wait({read}, timeout=wait_s)
    if read.done() and not read.cancelled() and read.exception() is None:
        return read.result()
    return online_fallback(services)


def _settled(read: asyncio.Future[set[str]]) -> None:
    if not read.cancelled():
        read.exception()  # retrieved: Redis being down is the fallback's case, not news


def online_fallback(services: Services) -> set[str]:
    """Who is online without asking Redis: the specialists Redis last named to this
    process, and every specialist with a socket here (online whatever Redis says)."""
    here = {p.id for p, sessions in services.hub.sessions.items() if p.role == "specialist" and sessions}
    return services.online_seen | here
