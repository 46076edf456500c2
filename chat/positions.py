"""A waiting request's place in the queue and its estimated wait, for the member."""

from __future__ import annotations

import asyncio
import time

from redis.exceptions import RedisError

from chat.services import Services
from chat.store import queue

# How long one read of the online specialists serves the first estimates of new requests.
# A burst's 2,000 `request`s each read the whole online set from Redis (2,000 members, then
# a set of them) for one number: 9-10 % of each `web` process's samples (docs/performance.md,
# round 8, burst). The matchmaker's next cycle refines every estimate anyway.
ONLINE_FOR_S = 1.0

_online: tuple[Services, float, asyncio.Future[int]] | None = None


async def position_of(
    services: Services, request: queue.Request, ahead: int | None = None
) -> tuple[int, int]:
    """(position, estimated wait) from the matchmaker if it leads here, else from SQL (or
    `ahead`, the requests before it, if the caller counted them as it stored the request)."""
    estimate = services.queue_position(request.id, time.time())
    if estimate is not None:
        return estimate
    position = (await queue.ahead_of(services.db, request) if ahead is None else ahead) + 1
    # Without the matchmaker's service rates: a conservative ten minutes per chat ahead,
    # spread over the specialists online. The matchmaker's next cycle refines it.
    return position, int(position * 600 / await _online_specialists(services))


async def _online_specialists(services: Services) -> int:
    """How many specialists are online (at least 1), read at most once per `ONLINE_FOR_S`
    however many ask meanwhile (those who ask while it is read share the one read)."""
    global _online
    t = time.monotonic()
    if _online is None or _online[0] is not services or t - _online[1] >= ONLINE_FOR_S:
        _online = (services, t, asyncio.ensure_future(_count_online(services)))
    try:
        return await asyncio.shield(_online[2])
    except (RedisError, OSError):  # Redis down: the estimate may be rough, the answer must come
        return 1


async def _count_online(services: Services) -> int:
    return max(1, len(await services.presence.online_specialists(time.time())))
