"""At most PEERCHAT_MAX_SOCKETS_PER_USER sockets per identity, across every process
(PRODUCT.md §4).

Each identity has one sorted set in Redis, `pc:sockets:<identity_key>` (a keyed HMAC of
(role, sub), never the account id), whose members are `<process id>|<socket id>`: a
socket's slot counts while its process's lease lives (chat/process_lease.py, the lease
presence counts under too). Taking a slot is one script: count the members under live
processes (dropping the others), add if under the cap. A socket's member is removed when
it closes; a process that dies simply stops renewing its lease, and its sockets stop
counting within one lease (PEERCHAT_PRESENCE_TTL_S), so a crash never leaks a count for
long. An idle process writes nothing per socket: its members are written again only when
its lease was missing or lapsed (Redis came back empty), after a failed write, and every
REWRITE_EVERY_S (which keeps the sets from expiring).

If Redis cannot answer, the socket is let in (and counted from the next renewal that
reaches Redis on): the cap protects the service from a runaway client, while refusing
every member in the middle of a Redis failover would shut out people who may be in crisis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from chat.config import Settings
from chat.process_lease import KEY_KEEP_S, PROCS, Holdings, ProcessLease, member_of
from chat.redis_keys import identity_key
from chat.redisconn import RedisClient

log = logging.getLogger("peerchat.sockets")

RENEW_CHUNK = 500  # members per command in a rewrite, so it never stalls the loop for long

# KEYS[1]: the identity's socket set. ARGV: now (s), the member, the cap, key lifetime
# (s), score, then the live process ids, or none to read them from `{pc:presence}:procs`
# here (one Redis or a Sentinel master; on a Redis Cluster that set is in another slot,
# so the caller reads it first). 1 if the socket now holds a slot, 0 if the cap is reached.
_TAKE = """
local key, now, member = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local given, known = #ARGV > 5, {}
for i = 6, #ARGV do known[ARGV[i]] = true end
local n = 0
for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  if m == member then n = -1; break end
  local p = string.match(m, '^(.-)|')
  local yes = p and known[p]
  if p and yes == nil then
    if given then
      yes = false
    else
      yes = tonumber(redis.call('ZSCORE', '{pc:presence}:procs', p) or '0') > now
      known[p] = yes
    end
  end
  if yes then
    n = n + 1
  elseif not given then
    redis.call('ZREM', key, m)  -- a dead process's (only when judged inside Redis)
  end
end
if n >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', key, ARGV[5], member)
redis.call('EXPIRE', key, ARGV[4])
return 1
"""

# Write members again: ARGV[1] score, ARGV[2] key lifetime (s), then a pair per socket:
# its identity's key and its member. Keys named in ARGV: one Redis or a Sentinel master;
# a Redis Cluster pipelines the same commands.
_WRITE = """
for i = 3, #ARGV, 2 do
  redis.call('ZADD', ARGV[i], ARGV[1], ARGV[i + 1])
  redis.call('EXPIRE', ARGV[i], ARGV[2])
end
return (#ARGV - 2) / 2
"""


_KEYS_KEPT = 100_000  # cached identity keys (an HMAC each); cleared when full


def _key(settings: Settings, role: str, sub: str) -> str:
    return f"pc:sockets:{identity_key(settings, role, sub)}"


_Slot = tuple[str, str]  # (the identity's key, socket id)


class SocketCap:
    def __init__(self, client: RedisClient, settings: Settings, lease: ProcessLease | None = None) -> None:
        """`lease`: this process's lease, shared with presence (a new one if None)."""
        self._redis = client
        self._settings = settings
        self._ttl_s = settings.presence_ttl_s
        self.lease = lease or ProcessLease(client, settings.presence_ttl_s)
        self._take = client.register_script(_TAKE)
        self._write = client.register_script(_WRITE)
        self._cluster = isinstance(client, RedisCluster)
        # (role, sub) → the identity's key: an HMAC per socket per rewrite is CPU for
        # nothing. Keyed by the identity, never by the socket id alone: socket ids are the
        # client's to choose, and two identities with the same socket id must not write or
        # give back each other's slot.
        self._keys: dict[tuple[str, str], str] = {}
        # The slots this process holds: what a rewrite writes.
        self._mine: Holdings[_Slot] = Holdings(self.lease)
        self._rewriting = False

    def _key(self, role: str, sub: str) -> str:
        key = self._keys.get((role, sub))
        if key is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            key = self._keys[(role, sub)] = _key(self._settings, role, sub)
        return key

    async def take(self, role: str, sub: str, socket_id: str) -> bool:
        """Whether the socket may open: False when the identity already holds the cap."""
        now = time.time()
        key = self._key(role, sub)
        member = member_of(self.lease.id, socket_id)
        try:
            if self.lease.until - now < self._ttl_s * 2 / 3:
                # Not renewed for a beat's interval (or never: the process's first socket):
                # a slot counts only under a live lease.
                await self.lease.renew(now)
            args: list[str | float | int] = [
                repr(now),
                member,
                self._settings.max_sockets_per_user,
                KEY_KEEP_S,
                self.lease.until,
            ]
            if self._cluster:
                live = cast(list[bytes | str], await self._redis.zrangebyscore(PROCS, f"({now}", "+inf"))
                args += [_text(p) for p in live]
                if len(args) == 5:
                    args.append(self.lease.id)  # no live process: at least this one
            took = bool(await self._take(keys=[key], args=args))
        except (RedisError, OSError) as exc:
            log.warning("socket cap not checked (Redis: %s); letting the socket in", type(exc).__name__)
            self._mine.add((key, socket_id), "")
            self._mine.failed()  # written by the next renewal that reaches Redis
            return True
        if took:
            self._mine.add((key, socket_id), "")
        return took

    async def give_back(self, role: str, sub: str, socket_id: str) -> None:
        key = self._key(role, sub)
        if self._mine.remove((key, socket_id)) is None:
            return  # refused: it never held a slot
        try:
            await self._redis.zrem(key, member_of(self.lease.id, socket_id))
        except (RedisError, OSError) as exc:
            # Repeated by the next renewal that reaches Redis.
            self._mine.failed()
            log.warning("socket slot not given back (Redis: %s)", type(exc).__name__)

    async def forget(self, role: str, sub: str) -> None:
        """Drop the identity's socket set (an erasure, PRODUCT.md §10). Its sockets are
        closed first on every process, so no rewrite writes them again."""
        self._keys.pop((role, sub), None)
        await self._redis.delete(_key(self._settings, role, sub))

    def forget_keyed(self, keyed: str) -> None:
        """Drop the cached key of whoever `keyed` (chat/redis_keys.identity_key) names: an
        erasure on any process (chat/privacy/forgetting.py). The cache holds their account
        id, and nothing else of theirs may stay (PRODUCT.md §10). A scan, for a rare event."""
        key = f"pc:sockets:{keyed}"
        for identity in [i for i, k in self._keys.items() if k == key]:
            del self._keys[identity]

    async def renew(self) -> None:
        """Renew this process's lease; write every slot held here again if it was missing or
        lapsed, a write failed, or REWRITE_EVERY_S passed (chat/process_lease.py)."""
        await self.lease.renew(time.time())
        if not self._mine.due() or self._rewriting:
            return
        self._rewriting = True
        try:
            begun = self._mine.begin()
            proc = self.lease.id
            batch = [(key, member_of(proc, sid)) for key, sid in list(self._mine.held)]
            for start in range(0, len(batch), RENEW_CHUNK):
                await self._write_chunk(batch[start : start + RENEW_CHUNK])
                await asyncio.sleep(0)  # let the sockets' frames through between chunks
            # After the writes: a slot given back while they ran, or whose removal failed
            # or may have been lost in a failover, must not count.
            gone = self._mine.gone_to_repeat()
            if gone:
                pipe = self._redis.pipeline(transaction=False)
                for (key, sid), _ in gone:
                    pipe.zrem(key, member_of(proc, sid))
                await pipe.execute()
            self._mine.rewritten(begun)
        finally:
            self._rewriting = False

    async def _write_chunk(self, members: list[tuple[str, str]]) -> None:
        score = self.lease.until
        if not self._cluster:
            args: list[str | float | int] = [score, KEY_KEEP_S]
            for key, member in members:
                args += (key, member)
            await self._write(args=args)
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, member in members:
            pipe.zadd(key, {member: score})
            pipe.expire(key, KEY_KEEP_S)
        await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
