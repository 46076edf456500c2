"""How late the event loop runs a timer, observed and (over 250 ms) logged."""

from __future__ import annotations

import asyncio
import logging

from chat.metrics import METRICS

log = logging.getLogger("peerchat.app")
LAG_INTERVAL_S = 0.1


async def watch_loop_lag() -> None:
    """How late a timer fires is how long every socket of this process waited behind other
    work (a stall in the loop is latency for all of them). Observed into
    `peerchat_event_loop_lag_seconds`; a stall over 250 ms is also logged."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_INTERVAL_S
        await asyncio.sleep(LAG_INTERVAL_S)
        lag = max(0.0, loop.time() - due)
        METRICS.loop_lag.observe(lag)
        if lag > 0.25:
            log.warning("event loop stalled %.0f ms", lag * 1000)
