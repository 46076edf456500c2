"""What one `web` process holds for its lifetime, opened in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
import redis.asyncio as redis

from chat.bus import Bus
from chat.config import Settings
from chat.hub import POKE_CHANNEL, Hub
from chat.people import Participants
from chat.presence import Presence
from chat.store.appender import Appender

if TYPE_CHECKING:
    from chat.matchmaker import Matchmaker


@dataclass
class Services:
    settings: Settings
    db: asyncpg.Pool[asyncpg.Record]
    redis: redis.Redis
    bus: Bus
    hub: Hub
    presence: Presence
    appender: Appender
    matchmaker: Matchmaker | None = None
    draining: bool = False
    # conversation id → (member, specialist), each the pair (role, sub) (chat/people.py):
    # never changes, so safe to cache.
    participants: dict[str, Participants] = field(default_factory=dict)

    async def poke_matchmaker(self) -> None:
        """Something the matchmaker should look at happened (here or, via the bus, anywhere)."""
        if self.matchmaker is not None:
            self.matchmaker.poke()
        await self.bus.publish(POKE_CHANNEL, b"")
