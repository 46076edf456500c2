"""chat/serving.py in a real uvicorn server: its main loop is the process's tick (chat/ticks.py).
While it serves, background sleeps are woken by the tick and the loop's lag is read on it;
uvicorn's own once-a-second work (the Date header) still comes each second; when it stops,
what still sleeps is handed to the loop's own timers."""

from __future__ import annotations

import asyncio
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from prometheus_client import generate_latest

from chat import ticks
from chat.metrics import METRICS
from tests.support.inprocess import serving


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _lag_count() -> float:
    for line in generate_latest(METRICS.registry).decode().splitlines():
        if line.startswith("peerchat_event_loop_lag_seconds_count "):
            return float(line.split()[1])
    raise AssertionError("no loop lag count")


async def test_the_servers_tick_wakes_sleepers_reads_the_lag_and_keeps_the_date_current() -> None:
    loop = asyncio.get_running_loop()
    assert not ticks.ticking(loop)
    async with serving(_app) as port:
        assert ticks.ticking(loop)
        before = _lag_count()
        began = loop.time()
        await asyncio.wait_for(ticks.sleep(0.3), 2)  # woken by the tick, not early
        assert loop.time() - began >= 0.3
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            first = (await http.get("/")).headers["date"]
            await asyncio.sleep(2.2)
            second = (await http.get("/")).headers["date"]
        gap = (parsedate_to_datetime(second) - parsedate_to_datetime(first)).total_seconds()
        assert 1 <= gap <= 4  # refreshed each second, not frozen at the start
        assert _lag_count() >= before + 8  # 2.5 s of 250 ms ticks, each a reading
        sleeper = asyncio.create_task(ticks.sleep(0.8))
        await asyncio.sleep(0)
    assert not ticks.ticking(loop)
    await asyncio.wait_for(sleeper, 2)  # handed to the loop's own timer when the tick stopped
