"""One lease per `web` process in Redis: what presence and the socket cap count a socket
under, instead of a lease per socket.

`{pc:presence}:procs` is a sorted set of process ids scored by their lease's expiry. A
process renews its own entry every TTL/3 (one command per process, however many sockets
it holds); a process that dies stops renewing, and everything it wrote (the members of
people's presence and socket-cap sets, `<process id>|<socket id>`) stops counting once its
lease passes: within one TTL, as before, with no write per socket per beat.

A renewal that finds the entry missing (Redis came up empty: a restart, a failover to a
replica that had not seen it) or lapsed (the process stalled past its lease, and other
processes may have cleaned its members away meanwhile) moves `epoch` on: presence and the
cap each rewrite everything they hold once they see the epoch moved (`Holdings`). So do
a failed write (`Holdings.failed`) and the bus reconnecting after a Redis outage
(`suspect()`: a failover may have lost the last writes).

The set's hash tag keeps it, and each process's specialists set, in one slot of a Redis
Cluster, so "who is online" over every live process is one script there too.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

from chat.redisconn import RedisClient

PROCS = "{pc:presence}:procs"
# A dead process's entry is kept this long after its lease passed, then pruned: a reader
# that sees a member of a process not in the set at all treats it as dead too.
_PRUNE_AFTER_S = 24 * 3600
# How long a person's set is kept after the last write to it: members of live processes
# are written again every `REWRITE_EVERY_S`, which renews it, so this bounds what a dead
# process leaves behind in Redis (pseudonymous sets: 10 min, where a lease per socket
# left 2 TTL). A rewrite every 2 min is two commands a socket, against two every TTL/3 for
# presence and two more for the cap when each socket held its own leases.
KEY_KEEP_S = 600
REWRITE_EVERY_S = 120.0
# Removals are repeated by the next rewrite for this long: a Sentinel failover may lose
# the last writes of the old master, and a lost removal would otherwise count a closed
# socket as long as its process lives.
RECENT_S = 120.0

# KEYS[1]: the processes' set. ARGV: process id, lease expiry, prune-before.
# Returns the entry's previous expiry, or false if it had none. GT: a renewal arriving late
# never shortens the lease (GT still adds a missing entry).
_RENEW = """
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
return old
"""


def member_of(process_id: str, socket_id: str) -> str:
    """A socket's member in a person's set: counted while `process_id`'s lease lives."""
    return f"{process_id}|{socket_id}"


def process_of(member: str) -> str:
    return member.partition("|")[0]


class ProcessLease:
    """This process's entry in `{pc:presence}:procs`, shared by presence and the socket cap."""

    def __init__(self, client: RedisClient, ttl_s: float, process_id: str | None = None) -> None:
        self._redis = client
        self.ttl_s = ttl_s
        self.id = process_id or secrets.token_hex(8)
        self._renew = client.register_script(_RENEW)
        # Moved on whenever what this process wrote may be missing from Redis.
        self.epoch = 0
        self.until = 0.0  # the lease's expiry as last written (0: never written)

    async def renew(self, now: float) -> None:
        """Extend the lease to `now` + TTL; moves `epoch` on if it was missing or lapsed."""
        expiry = now + self.ttl_s
        old = await self._renew(keys=[PROCS], args=[self.id, repr(expiry), repr(now - _PRUNE_AFTER_S)])
        if old is None or float(old) <= now:
            self.epoch += 1
        self.until = max(self.until, expiry)

    def live(self, now: float) -> bool:
        """Whether the lease, as this process last wrote it, still runs at `now`."""
        return now < self.until

    def suspect(self) -> None:
        """Redis may have lost recent writes (the bus reconnected): rewrite everything."""
        self.epoch += 1


K = TypeVar("K", bound=Hashable)


class Holdings(Generic[K]):
    """What one user of the lease (presence, the socket cap) holds in Redis, and what it
    must write again: everything once the lease's epoch moved or a write failed, plus the
    removals of the last `RECENT_S` (see the module's docstring). Items are (a person's
    keyed name or key, socket id): nothing here names an account id, so an erasure leaves
    nothing of the person in it once their sockets closed (chat/privacy/forgetting.py)."""

    def __init__(self, lease: ProcessLease) -> None:
        self.lease = lease
        self.held: dict[K, str] = {}  # what is held → a note its rewrite needs
        self._written_epoch = -1  # nothing written yet: the first renewal writes all
        self._written_at = 0.0  # monotonic
        self._failures = 0  # writes that did not reach Redis, ever
        self._failures_seen = 0  # ... of them, those a rewrite since has covered
        self.recent_gone: dict[K, tuple[str, float]] = {}  # → (its note, monotonic time)

    def add(self, item: K, note: str) -> None:
        self.held[item] = note
        self.recent_gone.pop(item, None)

    def remove(self, item: K) -> str | None:
        """Its note, or None if it was not held."""
        note = self.held.pop(item, None)
        if note is not None:
            self.recent_gone[item] = (note, time.monotonic())
        return note

    def failed(self) -> None:
        """A write did not reach Redis: the next renewal rewrites everything."""
        self._failures += 1

    def due(self) -> bool:
        """Whether the next renewal must rewrite everything held."""
        return (
            self._failures != self._failures_seen
            or self._written_epoch != self.lease.epoch
            or time.monotonic() - self._written_at >= REWRITE_EVERY_S
        )

    def begin(self) -> tuple[int, int]:
        """A rewrite starts: pass what this returns to `rewritten` once it reached Redis."""
        return self.lease.epoch, self._failures

    def gone_to_repeat(self) -> list[tuple[K, str]]:
        """Removals to repeat in a rewrite; older ones are forgotten unless a write failed
        since the last rewrite (then every removal since is repeated)."""
        if self._failures == self._failures_seen:
            horizon = time.monotonic() - RECENT_S
            for item in [i for i, (_, at) in self.recent_gone.items() if at < horizon]:
                del self.recent_gone[item]
        return [(item, note) for item, (note, _) in self.recent_gone.items()]

    def rewritten(self, begun: tuple[int, int]) -> None:
        """A rewrite that started with `begun` (from `begin`) reached Redis."""
        self._written_epoch, self._failures_seen = begun
        self._written_at = time.monotonic()
