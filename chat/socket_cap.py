"""At most PEERCHAT_MAX_SOCKETS_PER_USER sockets per identity, across every process
(PRODUCT.md §4).

Each identity has one sorted set in Redis, `pc:sockets:<identity_key>` (a keyed HMAC of
(role, sub), never the account id), whose members are socket ids scored by their lease's
expiry. Taking a slot is one script: drop expired leases, count, add if under the cap.
Every process renews its sockets' leases every lease/3 and removes a socket's lease when
it closes; a process that dies simply stops renewing, and its leases age out within one
lease (PEERCHAT_PRESENCE_TTL_S), so a crash never leaks a count for long.

If Redis cannot answer, the socket is let in (and counted from the next renewal that
reaches Redis on: a socket let in that way is renewed with a plain ZADD, the others with
ZADD XX, which never brings back a lease given back meanwhile):
the cap protects the service from a runaway client, while refusing every member in the
middle of a Redis failover would shut out people who may be in crisis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from chat.config import Settings
from chat.redis_keys import identity_key
from chat.redisconn import RedisClient

log = logging.getLogger("peerchat.sockets")

RENEW_CHUNK = 500  # leases per pipeline, so a renewal never stalls the loop for long

# KEYS[1]: the identity's socket set. ARGV: now (ms), lease expiry (ms), socket id, cap,
# key lifetime (ms). 1 if the socket now holds a slot, 0 if the cap is reached.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) == false
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


# Renew leases in one command per chunk: ARGV[1] lease expiry (ms), ARGV[2] key lifetime
# (ms), then a triple per socket: its identity's key, the socket id, and "1" for ZADD XX
# (a lease given back meanwhile must not come back) or "0" for a plain ZADD (a socket let
# in while Redis failed, leased for the first time). As a pipeline this was two commands
# and two replies per socket, most of an idle process's renewal CPU. The keys are named
# in ARGV, so this runs on one Redis or a Sentinel master; on a Redis Cluster `renew`
# pipelines the same commands instead (a script may not touch keys of several slots).
_RENEW = """
for i = 3, #ARGV, 3 do
  if ARGV[i + 2] == '1' then
    redis.call('ZADD', ARGV[i], 'XX', ARGV[1], ARGV[i + 1])
  else
    redis.call('ZADD', ARGV[i], ARGV[1], ARGV[i + 1])
  end
  redis.call('PEXPIRE', ARGV[i], ARGV[2])
end
return (#ARGV - 2) / 3
"""


_KEYS_KEPT = 100_000  # cached identity keys (an HMAC each); cleared when full


def _key(settings: Settings, role: str, sub: str) -> str:
    return f"pc:sockets:{identity_key(settings, role, sub)}"


class SocketCap:
    def __init__(self, client: RedisClient, settings: Settings) -> None:
        self._redis = client
        self._settings = settings
        self._lease_ms = int(settings.presence_ttl_s * 1000)
        self._take = client.register_script(_TAKE)
        self._renew = client.register_script(_RENEW)
        self._cluster = isinstance(client, RedisCluster)
        # (role, sub) → the identity's key: every renewal renews every socket, and an HMAC
        # per socket per renewal is CPU for nothing. Keyed by the identity, never by the
        # socket id alone: socket ids are the client's to choose, and two identities with
        # the same socket id must not renew or give back each other's lease.
        self._keys: dict[tuple[str, str], str] = {}
        # Sockets let in while Redis failed, that no renewal has leased yet.
        self._unleased: set[str] = set()

    def _key(self, role: str, sub: str) -> str:
        key = self._keys.get((role, sub))
        if key is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            key = self._keys[(role, sub)] = _key(self._settings, role, sub)
        return key

    async def take(self, role: str, sub: str, socket_id: str) -> bool:
        """Whether the socket may open: False when the identity already holds the cap."""
        now = int(time.time() * 1000)
        key = self._key(role, sub)
        try:
            took = await self._take(
                keys=[key],
                args=[
                    now,
                    now + self._lease_ms,
                    socket_id,
                    self._settings.max_sockets_per_user,
                    2 * self._lease_ms,
                ],
            )
        except (RedisError, OSError) as exc:
            log.warning("socket cap not checked (Redis: %s); letting the socket in", type(exc).__name__)
            self._unleased.add(socket_id)
            return True
        return bool(took)

    async def give_back(self, role: str, sub: str, socket_id: str) -> None:
        self._unleased.discard(socket_id)
        try:
            await self._redis.zrem(self._key(role, sub), socket_id)
        except (RedisError, OSError) as exc:
            # The lease ages out by itself within one lease.
            log.warning("socket lease not removed (Redis: %s)", type(exc).__name__)

    async def forget(self, role: str, sub: str) -> None:
        """Drop the identity's socket set (an erasure, PRODUCT.md §10): its leases would
        otherwise stay up to two leases after its sockets went. A socket of it still
        closing elsewhere is not leased again: its renewal is a ZADD XX."""
        self._keys.pop((role, sub), None)
        await self._redis.delete(_key(self._settings, role, sub))

    def forget_keyed(self, keyed: str) -> None:
        """Drop the cached key of whoever `keyed` (chat/redis_keys.identity_key) names: an
        erasure on any process (chat/privacy/forgetting.py). The cache holds their account
        id, and nothing else of theirs may stay (PRODUCT.md §10). A scan, for a rare event."""
        key = f"pc:sockets:{keyed}"
        for identity in [i for i, k in self._keys.items() if k == key]:
            del self._keys[identity]

    async def renew(self, held: Iterable[tuple[str, str, str]]) -> None:
        """Renew the leases of this process's sockets: (role, sub, socket id) each."""
        expiry = int(time.time() * 1000) + self._lease_ms
        batch = list(held)
        for start in range(0, len(batch), RENEW_CHUNK):
            first: list[tuple[str, str]] = []  # (key, socket id) leased for the first time
            leases: list[tuple[str, str, bool]] = []  # (key, socket id, XX)
            for role, sub, socket_id in batch[start : start + RENEW_CHUNK]:
                key = self._key(role, sub)
                # XX: a lease removed meanwhile (its socket closed during this renewal)
                # must not come back and hold a slot until it ages out.
                xx = socket_id not in self._unleased
                if not xx:
                    first.append((key, socket_id))
                leases.append((key, socket_id, xx))
            await self._renew_chunk(leases, expiry)
            for key, socket_id in first:
                if socket_id in self._unleased:
                    self._unleased.discard(socket_id)
                else:  # given back while this renewal ran: it must not hold a slot
                    await self._redis.zrem(key, socket_id)
            await asyncio.sleep(0)  # let the sockets' frames through between chunks

    async def _renew_chunk(self, leases: list[tuple[str, str, bool]], expiry: int) -> None:
        keep = 2 * self._lease_ms
        if not self._cluster:
            args: list[str | int] = [expiry, keep]
            for key, socket_id, xx in leases:
                args += (key, socket_id, "1" if xx else "0")
            await self._renew(args=args)
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, socket_id, xx in leases:
            pipe.zadd(key, {socket_id: expiry}, xx=xx)
            pipe.pexpire(key, keep)
        await pipe.execute()
