"""Presence in one process's memory, for unit tests of logic that also runs on Redis.
Leases are keyed by the pair (role, user id), as in Redis (PRODUCT.md §4)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence


class MemoryPresence:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._leases: defaultdict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self._absent: dict[str, float] = {}  # specialist id → since when
        self._epoch: float | None = None

    async def connect(self, user_id: str, role: str, conn_id: str, now: float) -> None:
        self._leases[(role, user_id)][conn_id] = now + self.ttl_s
        if role == "specialist":
            self._absent.pop(user_id, None)

    async def heartbeat(self, leases: Iterable[tuple[str, str, str]], now: float) -> None:
        for user_id, role, conn_id in leases:
            await self.connect(user_id, role, conn_id, now)

    async def disconnect(self, user_id: str, role: str, conn_id: str, now: float) -> bool:
        self._leases[(role, user_id)].pop(conn_id, None)
        gone = not await self.is_online(user_id, role, now)
        if gone and role == "specialist":
            self._absent.setdefault(user_id, now)
        return gone

    async def forget(self, user_id: str, role: str) -> None:
        self._leases.pop((role, user_id), None)
        if role == "specialist":
            self._absent.pop(user_id, None)

    async def is_online(self, user_id: str, role: str, now: float) -> bool:
        return any(expiry > now for expiry in self._leases.get((role, user_id), {}).values())

    async def online_among(self, user_ids: Sequence[str], role: str, now: float) -> set[str]:
        return {u for u in user_ids if await self.is_online(u, role, now)}

    async def online_specialists(self, now: float) -> set[str]:
        return {
            user_id
            for (role, user_id), leases in self._leases.items()
            if role == "specialist" and any(expiry > now for expiry in leases.values())
        }

    async def absent_since(
        self, user_ids: Sequence[str], now: float, *, mark: bool
    ) -> dict[str, tuple[float, bool]]:
        found: dict[str, tuple[float, bool]] = {}
        for user_id in user_ids:
            marked = mark and user_id not in self._absent
            if marked:
                self._absent[user_id] = now
            if user_id in self._absent:
                found[user_id] = (self._absent[user_id], marked)
        return found

    async def settled(self, now: float) -> bool:
        if self._epoch is None:
            self._epoch = now
        return now - self._epoch >= self.ttl_s
