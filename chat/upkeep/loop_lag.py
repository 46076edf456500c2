"""How late the event loop runs a timer, observed and (over 250 ms) logged.

Under `peerchat serve` the process's 250 ms tick is that timer (chat/ticks.py,
chat/serving.py): its lateness is observed there, at no wake of its own. Served any other
way, `watch_loop_lag` keeps a timer of its own at the same interval: a plain callback that schedules the
next, not a task that sleeps (a Future, a Task step and a TimerHandle each wake)."""

from __future__ import annotations

import asyncio
import logging

from chat import ticks
from chat.metrics import METRICS

log = logging.getLogger("peerchat.app")
LAG_INTERVAL_S = ticks.TICK_S
STALL_LOG_S = 0.25


def observe(lag: float) -> None:
    """A timer due `lag` seconds ago fired now."""
    if lag < 0.0:
        lag = 0.0
    METRICS.loop_lag.observe(lag)
    if lag > STALL_LOG_S:
        log.warning("event loop stalled %.0f ms", lag * 1000)


class _LagTimer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due = loop.time() + LAG_INTERVAL_S
        self._handle = loop.call_at(self._due, self._fired)

    def _fired(self) -> None:
        now = self._loop.time()
        observe(now - self._due)
        self._due = now + LAG_INTERVAL_S
        self._handle = self._loop.call_at(self._due, self._fired)

    def cancel(self) -> None:
        self._handle.cancel()


async def watch_loop_lag() -> None:
    """How late a timer fires is how long every socket of this process waited behind other
    work (a stall in the loop is latency for all of them). Observed into
    `peerchat_event_loop_lag_seconds`; a stall over 250 ms is also logged. Runs until
    cancelled. (Started only where no tick observes it: chat/lifespan.py.)"""
    timer = _LagTimer(asyncio.get_running_loop())
    try:
        await asyncio.Event().wait()
    finally:
        timer.cancel()
