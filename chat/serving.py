"""uvicorn's server, whose main loop is the process's tick (chat/ticks.py).

uvicorn wakes every 100 ms to see whether it should exit (and, each tenth time, to refresh
the Date header). Here that wake comes every `ticks.TICK_S` (250 ms) on a fixed grid,
measures the loop's lag (how late it came: chat/upkeep/loop_lag.py) and runs the timers due
on the tick, so the process's periodic work wakes it four times a second in all. uvicorn's
once-a-second work in `on_tick` still comes each second. `run` is `uvicorn.run` for one process, which is how
`peerchat serve`, `peerchat dev` and the benchmark serve."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from typing import Any

import uvicorn

from chat import ticks
from chat.upkeep import loop_lag

# uvicorn's exit status when the server did not start (uvicorn.main.STARTUP_FAILURE).
STARTUP_FAILURE = 3


class Server(uvicorn.Server):
    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        # From before the lifespan's startup: the background loops it starts sleep on the tick.
        loop = asyncio.get_running_loop()
        ticks.start(loop)
        try:
            await super().serve(sockets)
        finally:
            ticks.stop(loop)

    async def main_loop(self) -> None:
        """uvicorn's loop, `on_tick` every `ticks.TICK_S` on a fixed grid."""
        loop = asyncio.get_running_loop()
        timers = ticks.start(loop)  # the one serve() started
        try:
            await self._tick(loop, timers)
        finally:
            # The shutdown that follows (sockets closing, the lifespan's end) may take
            # seconds: what sleeps on the tick goes on the loop's own timers meanwhile.
            ticks.stop(loop)

    async def _tick(self, loop: asyncio.AbstractEventLoop, timers: ticks.Ticks) -> None:
        should_exit = await self.on_tick(0)
        due = refreshed = loop.time()
        while not should_exit:
            # The next grid point; after a stall longer than a tick, from now (the ticks
            # missed are not run one after another).
            due = max(due + ticks.TICK_S, loop.time())
            await asyncio.sleep(due - loop.time())
            now = loop.time()
            loop_lag.observe(now - due)
            timers.run(now)
            # uvicorn refreshes its Date header when `counter % 10 == 0` (once a second at
            # its own 100 ms ticks): here, at the first tick a second after the last.
            counter = 1
            if now - refreshed >= 1.0 - ticks.TICK_S / 2:
                counter, refreshed = 0, now
            should_exit = await self.on_tick(counter)


def run(app: str, **options: Any) -> None:
    """`uvicorn.run(app, **options)` for one process (no reload, no workers), served by
    `Server`."""
    config = uvicorn.Config(app, **options)
    config.load_app()
    server = Server(config=config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
