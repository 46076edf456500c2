"""Sweeps that one process per interval is enough for take turns.

The grace sweeps (chat/upkeep/grace.py, member_grace.py) run on every process so that any
one of them can die; each round is a compare-and-set, so two at once do nothing twice. But
every process sweeping every interval multiplied their idle cost by the number of
processes (each round reads every specialist or member at stake from PostgreSQL and asks
Redis about each). Now a round first takes the interval's turn, one `SET NX PX` in Redis,
and only the process that got it sweeps: the sweeps' cost is that of one process, however
many there are. A process that takes the turn and dies before sweeping delays the sweep
by one interval. Without Redis nobody gets a turn; the sweeps decide nothing without
Redis anyway (absence cannot be told from an outage).
"""

from __future__ import annotations

from chat.redisconn import RedisClient


async def take_turn(redis: RedisClient, name: str, every_s: float) -> bool:
    """Whether this process sweeps `name` this interval (`every_s`). The turn lasts a little
    less than the interval, so the next one is free when the next round comes."""
    ttl_ms = max(1, int(every_s * 900))
    return bool(await redis.set(f"pc:turn:{name}", b"1", nx=True, px=ttl_ms))
