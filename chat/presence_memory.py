"""Presence in memory, for unit tests of logic that also runs on Redis: one `Board` stands
for the Redis every process shares, one `MemoryPresence` for each process. Sockets count
while their process's lease lives (chat/process_lease.py), as in Redis; people are keyed
by the pair (role, user id) (PRODUCT.md §4)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence

from chat.presence import SpecialistsMark

_ids = itertools.count()


class Board:
    """What every process shares."""

    def __init__(self) -> None:
        self.wipe()

    def wipe(self) -> None:
        """As a Redis restarting empty."""
        self.procs: dict[str, float] = {}  # process id → lease expiry
        self.sockets: defaultdict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        self.absent: dict[str, float] = {}  # specialist id → since when
        self.epoch: float | None = None
        self.left = 0  # specialists who went offline by a close


class MemoryPresence:
    def __init__(self, ttl_s: float, board: Board | None = None) -> None:
        self.ttl_s = ttl_s
        self.board = board or Board()
        self.id = f"p{next(_ids)}"
        self._mine: set[tuple[str, str, str]] = set()  # (user id, role, socket id)
        self._returned: set[str] = set()  # see `Presence.returned`

    def _renew(self, now: float) -> None:
        procs = self.board.procs
        old = procs.get(self.id)
        procs[self.id] = max(old or 0.0, now + self.ttl_s)
        if old is None or old <= now:  # wiped or lapsed: write everything again
            for user_id, role, conn_id in self._mine:
                if self._write(user_id, role, conn_id):
                    self._returned.add(user_id)

    def _write(self, user_id: str, role: str, conn_id: str) -> bool:
        """Whether it removed a specialist's absence mark."""
        self.board.sockets[(role, user_id)].add((self.id, conn_id))
        return role == "specialist" and self.board.absent.pop(user_id, None) is not None

    def returned(self) -> list[str]:
        here = {user_id for user_id, role, _ in self._mine if role == "specialist"}
        back = [s for s in self._returned if s in here]
        self._returned.clear()
        return back

    def _live(self, owner: str, now: float) -> bool:
        return self.board.procs.get(owner, 0.0) > now

    async def connect(self, user_id: str, role: str, conn_id: str, now: float) -> None:
        self._mine.add((user_id, role, conn_id))
        if self.board.procs.get(self.id, 0.0) - now < self.ttl_s * 2 / 3:
            self._renew(now)
        self._write(user_id, role, conn_id)

    async def heartbeat(self, leases: Iterable[tuple[str, str, str]], now: float) -> None:
        for user_id, role, conn_id in leases:
            if (user_id, role, conn_id) not in self._mine:
                self._mine.add((user_id, role, conn_id))
                self._write(user_id, role, conn_id)
        self._renew(now)

    async def disconnect(self, user_id: str, role: str, conn_id: str, now: float) -> bool:
        self._mine.discard((user_id, role, conn_id))
        self.board.sockets[(role, user_id)].discard((self.id, conn_id))
        gone = not await self.is_online(user_id, role, now)
        if gone and role == "specialist":
            self.board.absent[user_id] = now
            self.board.left += 1
        return gone

    async def forget(self, user_id: str, role: str) -> None:
        self.board.sockets.pop((role, user_id), None)
        if role == "specialist":
            self.board.absent.pop(user_id, None)

    async def is_online(self, user_id: str, role: str, now: float) -> bool:
        return any(self._live(owner, now) for owner, _ in self.board.sockets.get((role, user_id), ()))

    async def online_among(self, user_ids: Sequence[str], role: str, now: float) -> set[str]:
        return {u for u in user_ids if await self.is_online(u, role, now)}

    async def online_specialists(self, now: float) -> set[str]:
        return {
            user_id
            for (role, user_id), sockets in self.board.sockets.items()
            if role == "specialist" and any(self._live(owner, now) for owner, _ in sockets)
        }

    async def specialists_marked(self, now: float) -> tuple[set[str], SpecialistsMark]:
        return await self.online_specialists(now), await self.specialists_mark(now)

    async def specialists_mark(self, now: float) -> SpecialistsMark:
        # Exact here: each live process with the specialists it holds.
        held: defaultdict[str, set[str]] = defaultdict(set)
        for (role, user_id), sockets in self.board.sockets.items():
            if role == "specialist":
                for owner, _ in sockets:
                    held[owner].add(user_id)
        live = sorted(p for p in self.board.procs if self._live(p, now))
        return tuple(f"{p} {' '.join(sorted(held[p]))}" for p in live)

    async def absent_since(
        self, user_ids: Sequence[str], now: float, *, mark: bool
    ) -> dict[str, tuple[float, bool]]:
        absent = self.board.absent
        found: dict[str, tuple[float, bool]] = {}
        for user_id in user_ids:
            marked = mark and user_id not in absent
            if marked:
                absent[user_id] = now
            if user_id in absent:
                found[user_id] = (absent[user_id], marked)
        return found

    async def lapses(self, now: float, within_s: float) -> tuple[int, float | None]:
        lapsed = sum(1 for expiry in self.board.procs.values() if now - within_s <= expiry <= now)
        return lapsed, self.board.epoch

    async def steady(self, now: float, within_s: float) -> bool:
        lapsed, up_since = await self.lapses(now, within_s)
        return lapsed == 0 and up_since is not None and now - up_since >= self.ttl_s

    async def departures(self) -> int:
        return self.board.left

    async def settled(self, now: float) -> bool:
        if self.board.epoch is None:
            self.board.epoch = now
        return now - self.board.epoch >= self.ttl_s
