"""Presence in Redis: one sorted set of leases per person (member = socket id, score =
expiry) and one sorted set of specialists (score = their latest lease expiry), so "who is
online" is one ZRANGEBYSCORE and a dead process's leases simply age out.

A person's keys are named by a keyed HMAC of (role, sub) (chat/redis_keys.py): Redis
never holds a member's account id, and a member and a specialist with the same `sub` are
two people here too (PRODUCT.md §2, §4). The specialists' set holds specialist ids in
clear: the matchmaker reads them back, and they are staff ids every one of their members
is shown anyway (docs/security.md).

A specialist's absence is one key (`SET NX`, so the first to notice wins) removed by their
next lease. `pc:presence:epoch` is set by the first reader after Redis came up empty; for
one TTL after it, absence is not trusted (the heartbeats are still rebuilding leases).

On a Redis Cluster the person's keys spread over the slots (no hash tag: their names are
HMACs) and no command spans two of them: the heartbeat, whose script would touch keys of
many slots, is a pipeline there instead (redis-py splits it per master and sends the parts
at once); every other pipeline here is of single-key commands, which it splits the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from chat.redisconn import RedisClient

log = logging.getLogger("peerchat.presence")

_SPECIALISTS = "pc:presence:specialists"
_EPOCH = "pc:presence:epoch"
_ABSENT_KEEP_S = 24 * 3600  # long after any grace; only bounds what a vanished user leaves
# Leases renewed per script call. A process renews all its sockets every TTL/3; as one
# pipeline of 4 commands per socket that was ~85 ms of one process's loop at 2,000 sockets
# (parsing 6,000 replies), a stall every member felt as latency. The script is one command
# and one reply per chunk, and the loop runs other work between chunks.
HEARTBEAT_CHUNK = 500
_HEARTBEAT_LUA = (Path(__file__).parent / "presence_heartbeat.lua").read_text()
# ARGV[1]: now; then the keyed names of people of one role. Returns the (1-based)
# positions of those with no live lease. Keys named in ARGV, as the heartbeat's: one Redis
# or a Sentinel master only (a Redis Cluster pipelines ZCOUNTs instead).
_OFFLINE_LUA = """
local now, offline = '(' .. ARGV[1], {}
for i = 2, #ARGV do
  if redis.call('ZCOUNT', 'pc:presence:user:' .. ARGV[i], now, '+inf') == 0 then
    offline[#offline + 1] = i - 1
  end
end
return offline
"""


class RedisPresence:
    def __init__(self, client: RedisClient, ttl_s: float, name: Callable[[str, str], str]) -> None:
        """`name`: (role, sub) → the person's keyed name (chat/redis_keys.identity_key)."""
        self._redis = client
        self.ttl_s = ttl_s
        self._name = name
        self._cluster = isinstance(client, RedisCluster)
        self._heartbeat = client.register_script(_HEARTBEAT_LUA)
        self._offline = client.register_script(_OFFLINE_LUA)
        # Socket id → its person's keyed name, from the socket's `connect` to its
        # `disconnect`: every beat renews every socket, and an HMAC per socket per beat was
        # a third of the beat's CPU.
        self._names: dict[str, tuple[str, str, str]] = {}  # socket id → (role, user id, name)

    def _key(self, user_id: str, role: str) -> str:
        return f"pc:presence:user:{self._name(role, user_id)}"

    def _absent(self, specialist_id: str) -> str:
        return f"pc:presence:absent:{self._name('specialist', specialist_id)}"

    async def connect(self, user_id: str, role: str, conn_id: str, now: float) -> None:
        self._names[conn_id] = (role, user_id, self._name(role, user_id))
        try:
            await self.heartbeat([(user_id, role, conn_id)], now)
        except (RedisError, OSError) as exc:
            # Redis is down: the socket works without it, and the next heartbeat after
            # Redis returns writes this lease.
            log.warning("presence lease deferred: %s", type(exc).__name__)

    async def heartbeat(self, leases: Iterable[tuple[str, str, str]], now: float) -> None:
        expiry = repr(now + self.ttl_s)
        keep = str(int(self.ttl_s * 2) + 1)
        if self._cluster:
            await self._heartbeat_pipelined(leases, expiry, keep)
            return
        args: list[str] = []
        names = self._names
        for user_id, role, conn_id in leases:
            known = names.get(conn_id)
            if known is not None and known[0] == role and known[1] == user_id:
                name = known[2]
            else:
                name = self._name(role, user_id)
            args += (name, conn_id, user_id if role == "specialist" else "")
            if len(args) >= 3 * HEARTBEAT_CHUNK:
                await self._heartbeat(args=[expiry, keep, *args])
                args = []
                await asyncio.sleep(0)  # let the sockets' frames through between chunks
        if args:
            await self._heartbeat(args=[expiry, keep, *args])

    async def _heartbeat_pipelined(
        self, leases: Iterable[tuple[str, str, str]], expiry: str, keep: str
    ) -> None:
        """The heartbeat script's commands, one key each (presence_heartbeat.lua)."""
        batch = list(leases)
        for start in range(0, len(batch), HEARTBEAT_CHUNK):
            pipe = self._redis.pipeline(transaction=False)
            for user_id, role, conn_id in batch[start : start + HEARTBEAT_CHUNK]:
                name = self._name(role, user_id)
                key = f"pc:presence:user:{name}"
                pipe.zadd(key, {conn_id: float(expiry)})
                pipe.expire(key, int(keep))
                if role == "specialist":
                    pipe.zadd(_SPECIALISTS, {user_id: float(expiry)}, gt=True)
                    pipe.delete(f"pc:presence:absent:{name}")
            await pipe.execute()
            await asyncio.sleep(0)

    async def disconnect(self, user_id: str, role: str, conn_id: str, now: float) -> bool:
        self._names.pop(conn_id, None)
        key = self._key(user_id, role)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(key, conn_id)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zrange(key, 0, -1, withscores=True)
        results = await pipe.execute()
        remaining = results[2]
        if remaining:
            if role == "specialist":
                # The latest remaining lease is the specialist's horizon now.
                await self._redis.zadd(_SPECIALISTS, {user_id: max(score for _, score in remaining)})
            return False
        if role == "specialist":
            pipe = self._redis.pipeline(transaction=False)
            pipe.zrem(_SPECIALISTS, user_id)
            pipe.set(self._absent(user_id), repr(now), nx=True, ex=_ABSENT_KEEP_S)
            await pipe.execute()
        return True

    async def forget(self, user_id: str, role: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(self._key(user_id, role))
        if role == "specialist":
            pipe.delete(self._absent(user_id))
            pipe.zrem(_SPECIALISTS, user_id)
        await pipe.execute()

    async def is_online(self, user_id: str, role: str, now: float) -> bool:
        return int(await self._redis.zcount(self._key(user_id, role), f"({now}", "+inf")) > 0

    async def online_among(self, user_ids: Sequence[str], role: str, now: float) -> set[str]:
        if not user_ids:
            return set()
        if not self._cluster:
            # One command and one short reply (the offline ones, usually few), instead of a
            # ZCOUNT and its reply per person: the member-grace sweep asks about every member
            # at stake, and packing and parsing those was most of its CPU.
            names = [self._name(role, user_id) for user_id in user_ids]
            offline = await self._offline(args=[repr(now), *names])
            missing = {user_ids[int(i) - 1] for i in offline}
            return {u for u in user_ids if u not in missing}
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zcount(self._key(user_id, role), f"({now}", "+inf")
        counts = await pipe.execute()
        return {u for u, n in zip(user_ids, counts, strict=True) if int(n) > 0}

    async def online_specialists(self, now: float) -> set[str]:
        members = await self._redis.zrangebyscore(_SPECIALISTS, f"({now}", "+inf")
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    async def absent_since(
        self, user_ids: Sequence[str], now: float, *, mark: bool
    ) -> dict[str, tuple[float, bool]]:
        if not user_ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            if mark:
                pipe.set(self._absent(user_id), repr(now), nx=True, ex=_ABSENT_KEEP_S)
            pipe.get(self._absent(user_id))
        results = await pipe.execute()
        found: dict[str, tuple[float, bool]] = {}
        step = 2 if mark else 1
        for i, user_id in enumerate(user_ids):
            marked = bool(results[i * step]) if mark else False
            raw = results[i * step + step - 1]
            if raw is not None:
                found[user_id] = (float(raw), marked)
        return found

    async def settled(self, now: float) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(_EPOCH, repr(now), nx=True)
        pipe.get(_EPOCH)
        _, raw = await pipe.execute()
        return raw is not None and now - float(raw) >= self.ttl_s
