"""chat/upkeep/loop_lag.py: the loop-lag timer observes how late it fires, logs a stall, and
stops when its task is cancelled."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import generate_latest

from chat.metrics import METRICS
from chat.upkeep import loop_lag


def _sample(name: str) -> float:
    for line in generate_latest(METRICS.registry).decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def test_a_stall_is_observed_and_logged_and_cancel_stops_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="peerchat.app")
    before = _sample("peerchat_event_loop_lag_seconds_count")
    slow_before = before - _sample('peerchat_event_loop_lag_seconds_bucket{le="0.25"}')
    task = asyncio.create_task(loop_lag.watch_loop_lag())
    await asyncio.sleep(loop_lag.LAG_INTERVAL_S * 2.5)  # two timers at least, on a quiet loop
    quiet = _sample("peerchat_event_loop_lag_seconds_count")
    assert quiet >= before + 2
    time.sleep(loop_lag.LAG_INTERVAL_S + 0.5)  # noqa: ASYNC251 - the stall itself: the timer due meanwhile fires late
    await asyncio.sleep(loop_lag.LAG_INTERVAL_S / 2)
    count = _sample("peerchat_event_loop_lag_seconds_count")
    slow = count - _sample('peerchat_event_loop_lag_seconds_bucket{le="0.25"}')
    assert slow == slow_before + 1
    assert any("event loop stalled" in r.getMessage() for r in caplog.records)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped = _sample("peerchat_event_loop_lag_seconds_count")
    await asyncio.sleep(loop_lag.LAG_INTERVAL_S * 2)
    assert _sample("peerchat_event_loop_lag_seconds_count") == stopped
