"""Every TTL/3: renew this process's presence lease, then repair delivery gaps."""

from __future__ import annotations

import logging
import time

from chat import ticks
from chat.delivery import peers
from chat.services import Services
from chat.upkeep.repair import Rounds, repair_once

log = logging.getLogger("peerchat.app")


async def heartbeat_once(services: Services) -> None:
    # No list of the sockets: each was registered by its `connect`, and presence writes
    # them again itself when its lease was lost (chat/process_lease.py). Listing 2,000
    # sockets every beat, and looking each up, cost more than the renewal's one command.
    await services.presence.heartbeat((), time.time())
    # This process's lease had lapsed (a stall, Redis lost past the TTL) and a sweep
    # elsewhere told some of its specialists' members `reconnecting`: take it back.
    for specialist_id in services.presence.returned():
        await peers.specialist_back(services, specialist_id)


async def heartbeats(services: Services) -> None:
    """Every TTL/3: renew this process's presence lease, and repair delivery gaps."""
    # Made as the process starts (this task is created in the app's lifespan, before any
    # socket is accepted): the first start read reaches back to here, not five minutes.
    rounds = Rounds()
    while True:
        await ticks.sleep(services.settings.presence_ttl_s / 3)  # on the process's tick (chat/ticks.py)
        try:
            await heartbeat_once(services)
        except Exception as exc:
            log.warning("presence heartbeat failed: %s", type(exc).__name__)
        try:
            await repair_once(services, rounds)
        except Exception as exc:
            log.warning("delivery repair skipped: %s", type(exc).__name__)
