"""Presence in Redis: one sorted set of leases per user (member = socket id, score = expiry)
and one sorted set of specialists (score = their latest lease expiry), so "who is online"
is one ZRANGEBYSCORE and a dead process's leases simply age out."""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as redis

_SPECIALISTS = "pc:presence:specialists"


def _key(user_id: str) -> str:
    return f"pc:presence:user:{user_id}"


class RedisPresence:
    def __init__(self, client: redis.Redis, ttl_s: float) -> None:
        self._redis = client
        self.ttl_s = ttl_s

    async def connect(self, user_id: str, role: str, conn_id: str, now: float) -> None:
        await self.heartbeat([(user_id, role, conn_id)], now)

    async def heartbeat(self, leases: Iterable[tuple[str, str, str]], now: float) -> None:
        expiry = now + self.ttl_s
        keep = int(self.ttl_s * 2) + 1
        pipe = self._redis.pipeline(transaction=False)
        count = 0
        for user_id, role, conn_id in leases:
            pipe.zadd(_key(user_id), {conn_id: expiry})
            pipe.expire(_key(user_id), keep)
            if role == "specialist":
                pipe.zadd(_SPECIALISTS, {user_id: expiry}, gt=True)
            count += 1
        if count:
            await pipe.execute()

    async def disconnect(self, user_id: str, role: str, conn_id: str, now: float) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(_key(user_id), conn_id)
        pipe.zremrangebyscore(_key(user_id), "-inf", now)
        pipe.zrange(_key(user_id), 0, -1, withscores=True)
        results = await pipe.execute()
        remaining = results[2]
        if remaining:
            if role == "specialist":
                # The latest remaining lease is the specialist's horizon now.
                await self._redis.zadd(_SPECIALISTS, {user_id: max(score for _, score in remaining)})
            return False
        if role == "specialist":
            await self._redis.zrem(_SPECIALISTS, user_id)
        return True

    async def is_online(self, user_id: str, now: float) -> bool:
        return int(await self._redis.zcount(_key(user_id), f"({now}", "+inf")) > 0

    async def online_specialists(self, now: float) -> set[str]:
        members = await self._redis.zrangebyscore(_SPECIALISTS, f"({now}", "+inf")
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}
