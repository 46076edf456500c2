"""Who is connected, anywhere: each live socket is a lease that heartbeats keep fresh.

A user is online while any of their leases is unexpired; a specialist with no live lease
counts as offline once the TTL passes, even if their process died without a word.
Backends: `presence_redis` and `presence_memory`, held to one contract by
tests/chat/test_presence.py. The clock is passed in so the memory backend is exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Presence(Protocol):
    async def connect(self, user_id: str, role: str, conn_id: str, now: float) -> None: ...

    async def heartbeat(self, leases: Iterable[tuple[str, str, str]], now: float) -> None:
        """Renew (user_id, role, conn_id) leases; also re-creates them after a Redis wipe."""

    async def disconnect(self, user_id: str, role: str, conn_id: str, now: float) -> bool:
        """Drop one lease; True if the user has no live lease left."""

    async def is_online(self, user_id: str, now: float) -> bool: ...

    async def online_specialists(self, now: float) -> set[str]: ...
