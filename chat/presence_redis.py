"""Presence in Redis: one lease per process (chat/process_lease.py), not per socket.

A person's set `pc:presence:user:<name>` holds a member `<process id>|<socket id>` per
socket, written when the socket connects and removed when it closes; it counts while its
process's lease in `{pc:presence}:procs` lives. So an idle process writes one command per
beat however many sockets it holds, and a process that dies takes its people offline
within one TTL (PRODUCT.md §5) without a word. Readers judge members by the live
processes inside Redis (one script, one round trip); dead members are dropped by the
closes that meet them, and a set no live process writes to expires (`KEY_KEEP_S`).

Specialists online: each process keeps the set of specialists with a socket on it,
`{pc:presence}:proc:<process id>:specialists` (added on their first socket here, removed
on their last), so "who is online" is the union over live processes, in one slot.

A person's keys are named by a keyed HMAC of (role, sub) (chat/redis_keys.py): Redis
never holds a member's account id, and a member and a specialist with the same `sub` are
two people here too (PRODUCT.md §2, §4). The specialists' sets hold specialist ids in
clear: the matchmaker reads them back, and they are staff ids every one of their members
is shown anyway (docs/security.md).

A specialist's absence is one key, set when their last socket anywhere closes (or, `SET
NX`, by the first sweep to notice their process died) and removed by their next socket or
their process's next rewrite. `pc:presence:epoch` is set by the first reader after Redis
came up empty; for one TTL after it, absence is not trusted (processes are still writing
their sockets again: each does it at its next beat, when it finds its lease gone).

On a Redis Cluster the person's keys spread over the slots (no hash tag: their names are
HMACs) and no script spans two of them: there the scripts' work is pipelines
(chat/presence_cluster.py); the scripts themselves are chat/presence_scripts.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from chat import presence_cluster as cluster
from chat import presence_scripts as scripts
from chat.presence import SpecialistsMark
from chat.presence_cluster import text
from chat.presence_scripts import ABSENT, ABSENT_KEEP_S, LEFT, USER
from chat.process_lease import KEY_KEEP_S, PROCS, Holdings, ProcessLease, member_of
from chat.redisconn import RedisClient

log = logging.getLogger("peerchat.presence")

_EPOCH = "pc:presence:epoch"
# Sockets written per command when a process writes all of them again (after a Redis
# wipe, a lapsed lease, or every REWRITE_EVERY_S): one script and one reply per chunk,
# and the loop runs other work between chunks.
WRITE_CHUNK = 500

_Socket = tuple[str, str, str]  # (user id, role, socket id)
_Held = tuple[str, str]  # (the person's keyed name, socket id)


def _mark(raw: Sequence[bytes | str]) -> SpecialistsMark:
    return tuple(sorted(text(entry) for entry in raw))


class RedisPresence:
    def __init__(
        self,
        client: RedisClient,
        ttl_s: float,
        name: Callable[[str, str], str],
        lease: ProcessLease | None = None,
    ) -> None:
        """`name`: (role, sub) → the person's keyed name (chat/redis_keys.identity_key).
        `lease`: this process's lease, shared with the socket cap (a new one if None)."""
        self._redis = client
        self.ttl_s = ttl_s
        self._name = name
        self.lease = lease or ProcessLease(client, ttl_s)
        self._cluster = isinstance(client, RedisCluster)
        self._write = client.register_script(scripts.WRITE)
        self._offline = client.register_script(scripts.OFFLINE)
        self._leave = client.register_script(scripts.LEAVE)
        self._specialists = client.register_script(scripts.SPECIALISTS)
        self._replace = client.register_script(scripts.REPLACE)
        self._forget_specialist = client.register_script(scripts.FORGET_SPECIALIST)
        # Each open socket here → its person's keyed name (an HMAC per socket per beat was
        # CPU for nothing); what this process wrote (noting a specialist's id); how many
        # sockets each specialist has here.
        self._open: dict[_Socket, str] = {}
        self._mine: Holdings[_Held] = Holdings(self.lease)
        self._here: Counter[str] = Counter()
        self._rewriting = False
        # Specialists connected here whose absence mark a rewrite removed (`returned`).
        self._returned: set[str] = set()

    @property
    def _specialists_here(self) -> str:
        return f"{{pc:presence}}:proc:{self.lease.id}:specialists"

    def _key(self, user_id: str, role: str) -> str:
        return USER + self._name(role, user_id)

    def _hold(self, socket: _Socket) -> None:
        """Count the socket as this process's."""
        if socket in self._open:
            return
        user_id, role, conn_id = socket
        name = self._open[socket] = self._name(role, user_id)
        specialist = role == "specialist"
        self._mine.add((name, conn_id), user_id if specialist else "")
        if specialist:
            self._here[user_id] += 1

    async def connect(self, user_id: str, role: str, conn_id: str, now: float) -> None:
        socket = (user_id, role, conn_id)
        self._hold(socket)
        try:
            if self.lease.until - now < self.ttl_s * 2 / 3:
                # Not renewed for a beat's interval (or never: the process's first socket).
                await self.lease.renew(now)
            if self._mine.due() and not self._rewriting:
                await self._rewrite()
                return
            # (A rewrite running now may have listed its sockets before this one.)
            name = self._open[socket]
            spec = user_id if role == "specialist" else ""
            await self._write_sockets([(name, member_of(self.lease.id, conn_id), spec)])
        except (RedisError, OSError) as exc:
            # Redis is down: the socket works without it, and the next beat after Redis
            # returns writes it.
            self._mine.failed()
            log.warning("presence of a socket deferred: %s", type(exc).__name__)

    async def heartbeat(self, leases: Iterable[tuple[str, str, str]], now: float) -> None:
        for socket in leases:
            if socket not in self._open:
                self._hold(socket)
                self._mine.failed()  # never written: written by the rewrite below
        await self.lease.renew(now)
        if self._mine.due():
            await self._rewrite()

    async def _rewrite(self) -> None:
        """Write every socket here again, this process's specialists set, and the removals
        that may have been lost (chat/process_lease.py)."""
        if self._rewriting:
            return  # the one running covers it, and a later beat sees whatever it missed
        self._rewriting = True
        try:
            begun = self._mine.begin()
            proc = self.lease.id
            held = self._mine.held.items()
            batch = [(name, member_of(proc, conn_id), spec) for (name, conn_id), spec in held]
            for start in range(0, len(batch), WRITE_CHUNK):
                self._returned.update(await self._write_sockets(batch[start : start + WRITE_CHUNK]))
                await asyncio.sleep(0)  # let the sockets' frames through between chunks
            here = self._specialists_here
            await self._replace(
                keys=[here, here + ":gen"], args=[KEY_KEEP_S, *[u for u, n in self._here.items() if n > 0]]
            )
            # After the members: a socket that closed while they were written had its
            # removal land before its member was written again.
            await self._remove(self._mine.gone_to_repeat())
            self._mine.rewritten(begun)
        finally:
            self._rewriting = False

    async def _remove(self, gone: Sequence[tuple[_Held, str]]) -> None:
        if not gone:
            return
        proc = self.lease.id
        pipe = self._redis.pipeline(transaction=False)
        for (name, conn_id), spec in gone:
            pipe.zrem(USER + name, member_of(proc, conn_id))
            if spec and spec not in self._here:
                # The specialists set may have been replaced from a list read before
                # their last socket here closed.
                pipe.srem(self._specialists_here, spec)
                pipe.incr(LEFT)  # they may be offline only now: `departures`
        await pipe.execute()

    async def _write_sockets(self, sockets: Sequence[tuple[str, str, str]]) -> list[str]:
        """Write the sockets' members; returns the specialists whose absence mark went."""
        score = self.lease.until
        if not self._cluster:
            args: list[str | float | int] = [score, KEY_KEEP_S, self._specialists_here]
            for triple in sockets:
                args += triple
            return [text(s) for s in await self._write(args=args)]
        return await cluster.write_sockets(self._redis, sockets, score, self._specialists_here)

    def returned(self) -> list[str]:
        """Specialists with a socket here whose absence mark this process's rewrite removed
        since the last call: their process had stalled or lost Redis for longer than its
        lease, and a sweep elsewhere (or a close meeting the lapsed lease) told their
        members `reconnecting`, which nothing else takes back (chat/upkeep/heartbeat.py)."""
        back = [s for s in self._returned if self._here.get(s, 0) > 0]
        self._returned.clear()
        return back

    async def disconnect(self, user_id: str, role: str, conn_id: str, now: float) -> bool:
        socket = (user_id, role, conn_id)
        name = self._open.pop(socket, None) or self._name(role, user_id)
        self._mine.remove((name, conn_id))
        last_here = False
        if role == "specialist" and self._here.get(user_id, 0) > 0:
            self._here[user_id] -= 1
            if self._here[user_id] == 0:
                del self._here[user_id]
                last_here = True
        member = member_of(self.lease.id, conn_id)
        here = self._specialists_here if last_here else ""
        spec = user_id if role == "specialist" else ""
        try:
            if not self._cluster:
                gone = await self._leave(args=[repr(now), name, member, here, spec, ABSENT_KEEP_S])
                return bool(gone)
            return await cluster.leave(self._redis, name, member, here, spec, now)
        except (RedisError, OSError):
            self._mine.failed()  # the next beat repeats the removal
            raise

    async def forget(self, user_id: str, role: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(self._key(user_id, role))
        if role == "specialist":
            pipe.delete(ABSENT + self._name("specialist", user_id))
        await pipe.execute()
        if role == "specialist":
            await self._forget_specialist(keys=[PROCS], args=[user_id])

    async def is_online(self, user_id: str, role: str, now: float) -> bool:
        return bool(await self.online_among([user_id], role, now))

    async def online_among(self, user_ids: Sequence[str], role: str, now: float) -> set[str]:
        if not user_ids:
            return set()
        names = [self._name(role, user_id) for user_id in user_ids]
        if not self._cluster:
            # One command and one short reply (the offline ones, usually few): the
            # member-grace sweep asks about every member at stake.
            offline = await self._offline(args=[repr(now), *names])
            missing = {user_ids[int(i) - 1] for i in offline}
            return {u for u in user_ids if u not in missing}
        return await cluster.online_among(self._redis, user_ids, names, now)

    async def online_specialists(self, now: float) -> set[str]:
        return (await self.specialists_marked(now))[0]

    async def specialists_marked(self, now: float) -> tuple[set[str], SpecialistsMark]:
        mark, members = await self._specialists(keys=[PROCS], args=[repr(now), "1"])
        return {text(m) for m in members}, _mark(mark)

    async def specialists_mark(self, now: float) -> SpecialistsMark:
        """Per live process: its id, its specialists set's size and generation (the
        SPECIALISTS script). Between two equal marks the online specialists changed only by
        a write that poked the matchmaker after it (a connect, a close that left someone
        offline): a lease starting or lapsing changes the processes named; the rewrite that
        writes what a failed connect or close could not, or a Redis that came back empty,
        changes a set's size or its generation (the REPLACE script)."""
        mark, _ = await self._specialists(keys=[PROCS], args=[repr(now), "0"])
        return _mark(mark)

    async def absent_since(
        self, user_ids: Sequence[str], now: float, *, mark: bool
    ) -> dict[str, tuple[float, bool]]:
        if not user_ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            key = ABSENT + self._name("specialist", user_id)
            if mark:
                pipe.set(key, repr(now), nx=True, ex=ABSENT_KEEP_S)
            pipe.get(key)
        results = await pipe.execute()
        found: dict[str, tuple[float, bool]] = {}
        step = 2 if mark else 1
        for i, user_id in enumerate(user_ids):
            marked = bool(results[i * step]) if mark else False
            raw = results[i * step + step - 1]
            if raw is not None:
                found[user_id] = (float(raw), marked)
        return found

    async def lapses(self, now: float, within_s: float) -> tuple[int, float | None]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcount(PROCS, repr(now - within_s), repr(now))
        pipe.get(_EPOCH)
        lapsed, raw = await pipe.execute()
        return int(lapsed), None if raw is None else float(raw)

    async def steady(self, now: float, within_s: float) -> bool:
        lapsed, up_since = await self.lapses(now, within_s)
        return lapsed == 0 and up_since is not None and now - up_since >= self.ttl_s

    async def departures(self) -> int:
        return int(await self._redis.get(LEFT) or 0)

    async def settled(self, now: float) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(_EPOCH, repr(now), nx=True)
        pipe.get(_EPOCH)
        _, raw = await pipe.execute()
        return raw is not None and now - float(raw) >= self.ttl_s
