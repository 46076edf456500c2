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
    `peerchat_event_loop_lag_seconds`; a stall over 250 ms is also logged. Runs until
    cancelled.

    A chain of plain timer callbacks, not a task sleeping in a loop: ten times a second on
    every process, the task's wake-up (a future per sleep, its callback, the task's step)
    cost more than the measuring itself (6.5 % of an idle process's CPU samples)."""
    loop = asyncio.get_running_loop()
    observe = METRICS.loop_lag.observe
    handle: asyncio.TimerHandle | None = None

    def tick(due: float) -> None:
        nonlocal handle
        now = loop.time()
        lag = max(0.0, now - due)
        observe(lag)
        if lag > 0.25:
            log.warning("event loop stalled %.0f ms", lag * 1000)
        handle = loop.call_at(now + LAG_INTERVAL_S, tick, now + LAG_INTERVAL_S)

    first = loop.time() + LAG_INTERVAL_S
    handle = loop.call_at(first, tick, first)
    try:
        await loop.create_future()  # never set: the ticks run until the task is cancelled
    finally:
        handle.cancel()
