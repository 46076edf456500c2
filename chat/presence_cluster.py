"""Redis presence on a Redis Cluster: what chat/presence_redis.py does with a script
elsewhere, as pipelines. A script may not touch keys of several slots, and a person's keys
spread over the slots (their names are HMACs, with no hash tag); redis-py splits each
pipeline per master and sends the parts at once. A reader fetches the live processes in
the same pipeline as the people's sets and judges the members here.
"""

from __future__ import annotations

from collections.abc import Sequence

from chat.presence_scripts import ABSENT, ABSENT_KEEP_S, LEFT, USER
from chat.process_lease import KEY_KEEP_S, PROCS, process_of
from chat.redisconn import RedisClient


async def write_sockets(
    redis: RedisClient, sockets: Sequence[tuple[str, str, str]], score: float, specialists_here: str
) -> list[str]:
    """scripts.WRITE: each (name, member, specialist id or "") written; returns the
    specialists whose absence mark went."""
    pipe = redis.pipeline(transaction=False)
    marks: list[tuple[int, str]] = []  # (the DEL's place in the replies, the specialist)
    queued = 0
    for name, member, spec in sockets:
        key = USER + name
        pipe.zadd(key, {member: score})
        pipe.expire(key, KEY_KEEP_S)
        queued += 2
        if spec:
            marks.append((queued, spec))
            pipe.delete(ABSENT + name)
            pipe.sadd(specialists_here, spec)
            pipe.expire(specialists_here, KEY_KEEP_S)
            queued += 3
    replies = await pipe.execute()
    return [spec for at, spec in marks if replies[at]]


async def leave(redis: RedisClient, name: str, member: str, here: str, spec: str, now: float) -> bool:
    """scripts.LEAVE: True if the person has no socket left under a live process."""
    key = USER + name
    pipe = redis.pipeline(transaction=False)
    pipe.zrem(key, member)
    if here:
        pipe.srem(here, spec)
    pipe.zrange(key, 0, -1)
    pipe.zrangebyscore(PROCS, f"({now}", "+inf")
    *_, members, procs = await pipe.execute()
    live = {text(p) for p in procs}
    if any(process_of(text(m)) in live for m in members):
        return False
    if spec:
        await redis.set(ABSENT + name, repr(now), ex=ABSENT_KEEP_S)
        await redis.incr(LEFT)
    return True


async def online_among(
    redis: RedisClient, user_ids: Sequence[str], names: Sequence[str], now: float
) -> set[str]:
    """scripts.OFFLINE, read the other way: who of `user_ids` (keyed `names`) is online."""
    pipe = redis.pipeline(transaction=False)
    pipe.zrangebyscore(PROCS, f"({now}", "+inf")
    for name in names:
        pipe.zrange(USER + name, 0, -1)
    procs, *sets = await pipe.execute()
    live = {text(p) for p in procs}
    return {
        u
        for u, members in zip(user_ids, sets, strict=True)
        if any(process_of(text(m)) in live for m in members)
    }


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
