"""Sweeps that one process per interval is enough for take turns.

The grace sweeps (chat/upkeep/grace.py, member_grace.py) run on every process so that any
one of them can die; each round is a compare-and-set, so two at once do nothing twice. But
every process sweeping every interval multiplied their idle cost by the number of
processes (each round reads every specialist or member at stake from PostgreSQL and asks
Redis about each). Now a round first takes the interval's turn, one `SET NX PX` in Redis,
and only the process that got it sweeps: the sweeps' cost is that of one process, however
many there are. A process that takes the turn and dies before sweeping delays the sweep
by one interval.

Without Redis every process takes the turn (fail open). It used to be nobody, on the
grounds that the sweeps decide nothing without Redis (absence cannot be told from an
outage); but a round also does PostgreSQL-only work that must not wait for Redis (a warm
transfer whose timer died with its process expires in the reconnect grace's round), and
every step of a round is a compare-and-set under the round's advisory lock, so processes
sweeping at once cost a little and do nothing twice. The Redis-bound steps then fail and
skip the rest of that round, as before.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from chat.redisconn import RedisClient

log = logging.getLogger("peerchat.grace")


async def take_turn(redis: RedisClient, name: str, every_s: float) -> bool:
    """Whether this process sweeps `name` this interval (`every_s`). The turn lasts a little
    less than the interval, so the next one is free when the next round comes. True when
    Redis cannot be asked (see the module's docstring)."""
    ttl_ms = max(1, int(every_s * 900))
    try:
        return bool(await redis.set(f"pc:turn:{name}", b"1", nx=True, px=ttl_ms))
    except (RedisError, OSError, TimeoutError) as exc:
        log.debug("turn %s taken without Redis: %s", name, type(exc).__name__)
        return True
