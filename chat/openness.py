"""Whether the service is open (PEERCHAT_HOURS), and when a member is shown the
alternatives (PEERCHAT_ALTERNATIVES): when it is closed, when no specialist is online, and
during a long wait (PRODUCT.md §3, §5 v1.1). The schedule itself is matching/hours.py."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import RedisError

from chat.config import Settings
from chat.services import Services
from chat.store.db import iso
from protocol import frames as f

# An estimated wait this long (seconds) counts as a long wait: the member is shown the
# alternatives too, and keeps their place in line.
LONG_WAIT_S = 600


@dataclass(frozen=True, slots=True)
class Openness:
    open: bool
    opens_at: str | None  # ISO 8601 UTC; None while open (or if no span ever opens)


def openness(settings: Settings, now: datetime | None = None) -> Openness:
    schedule = settings.hours
    if schedule is None:
        return Openness(open=True, opens_at=None)
    now = now or datetime.now(UTC)
    if schedule.is_open(now):
        return Openness(open=True, opens_at=None)
    opens = schedule.opens_at(now)
    return Openness(open=False, opens_at=iso(opens) if opens is not None else None)


def alternative_frames(settings: Settings) -> list[f.Alternative]:
    return [f.Alternative(name=a.name, url=a.url, description=a.description) for a in settings.alternatives]


def during_long_wait(settings: Settings, estimated_wait_s: int) -> list[f.Alternative] | None:
    """For a `queue_update`: the alternatives while the estimate is a long wait, else None."""
    if estimated_wait_s >= LONG_WAIT_S and settings.alternatives:
        return alternative_frames(settings)
    return None


async def alternatives_for(
    services: Services, state: Openness, estimated_wait_s: int | None = None
) -> list[f.Alternative] | None:
    """The alternatives to show a member now, or None when there is no reason to (or none
    are configured)."""
    settings = services.settings
    if not settings.alternatives:
        return None
    if not state.open or (estimated_wait_s is not None and estimated_wait_s >= LONG_WAIT_S):
        return alternative_frames(settings)
    try:
        nobody = not await services.presence.online_specialists(time.time())
    except (RedisError, OSError):
        nobody = False  # presence unknown: say nothing rather than guess "nobody"
    return alternative_frames(settings) if nobody else None
