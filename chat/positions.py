"""A waiting request's place in the queue and its estimated wait, for the member."""

from __future__ import annotations

import time

from redis.exceptions import RedisError

from chat.services import Services
from chat.store import queue


async def position_of(services: Services, request: queue.Request) -> tuple[int, int]:
    """(position, estimated wait) from the matchmaker if it leads here, else from SQL."""
    estimate = services.queue_position(request.id, time.time())
    if estimate is not None:
        return estimate
    position = await queue.ahead_of(services.db, request) + 1
    # Without the matchmaker's service rates: a conservative ten minutes per chat ahead,
    # spread over the specialists online. The matchmaker's next cycle refines it.
    try:
        online = max(1, len(await services.presence.online_specialists(time.time())))
    except (RedisError, OSError):  # Redis down: the estimate may be rough, the answer must come
        online = 1
    return position, int(position * 600 / online)
