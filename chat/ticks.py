"""The process's one clock: a web process's periodic timers, woken by one 250 ms tick.

On a virtual machine like the benchmark's, a process that sleeps and is woken pays about
100 µs of CPU for the wake itself, whatever it then does: a 10 Hz timer costs 0.1 % of a
core doing nothing (docs/performance.md, round 11). uvicorn's server wakes every 100 ms
anyway (its main loop: shutdown, the Date header), and the loop-lag reading did too.
chat/serving.py's server makes uvicorn's wake the process's tick, every `TICK_S` on a
fixed grid (250 ms: every stall the log reports, over 250 ms, is still seen; a SIGTERM is
acted on within a tick; the Date header still changes each second): it measures the event
loop's lag there
(chat/upkeep/loop_lag.py) and runs whatever came due: the keepalive ring's turn each
second (chat/gateway/keepalive.py) and every `await ticks.sleep(s)` of the background
loops (presence heartbeats, revocation polls, grace rounds...). One wake serves them all.

A timer on the tick fires at the first tick at or after its time: never early, at most one
tick late (plus the loop's lag). Callbacks run through `call_soon`, so one that raises is
reported like any other callback and the tick goes on.

Without a tick (the app under another server, in-process tests, the shutdown after the
main loop ended) `call_at` is the loop's own and `sleep` is `asyncio.sleep`; a tick that
stops hands what it still holds to the loop's own timers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from collections.abc import Callable
from typing import Protocol

TICK_S = 0.25


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class _Timer:
    __slots__ = ("callback", "cancelled", "handle")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False
        self.handle: asyncio.Handle | None = None  # once handed to the loop

    def cancel(self) -> None:
        self.cancelled = True
        if self.handle is not None:
            self.handle.cancel()


class Ticks:
    """The timers a loop's tick runs; driven by `run(now)` every tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()

    def call_at(self, when: float, callback: Callable[[], object]) -> _Timer:
        timer = _Timer(callback)
        heapq.heappush(self._heap, (when, next(self._order), timer))
        return timer

    def run(self, now: float) -> None:
        """Tick: everything due by `now` runs, each as a callback of its own."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, timer = heapq.heappop(heap)
            if not timer.cancelled:
                timer.handle = self._loop.call_soon(timer.callback)

    def stop(self) -> None:
        """No more ticks: what is still waiting goes on the loop's own timers."""
        heap, self._heap = self._heap, []
        for when, _, timer in heap:
            if not timer.cancelled:
                timer.handle = self._loop.call_at(when, timer.callback)

    def __len__(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)


_ticking: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ticks] = weakref.WeakKeyDictionary()


def start(loop: asyncio.AbstractEventLoop) -> Ticks:
    """The loop's tick from now on (chat/serving.py); `stop` it when it ends. A loop that
    ticks already keeps its tick: a second server in the same loop (the in-process test
    servers, tests/support/inprocess.py) drives the same one. (A new one in its place left
    what waited on the first where no `stop` would hand it to the loop: lost.)"""
    ticks = _ticking.get(loop)
    if ticks is None:
        ticks = _ticking[loop] = Ticks(loop)
    return ticks


def stop(loop: asyncio.AbstractEventLoop) -> None:
    ticks = _ticking.pop(loop, None)
    if ticks is not None:
        ticks.stop()


def ticking(loop: asyncio.AbstractEventLoop) -> bool:
    return loop in _ticking


def call_at(loop: asyncio.AbstractEventLoop, when: float, callback: Callable[[], object]) -> Cancellable:
    """`callback` at loop time `when`: on the tick if the loop has one, else on a timer."""
    ticks = _ticking.get(loop)
    if ticks is None:
        return loop.call_at(when, callback)
    return ticks.call_at(when, callback)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def sleep(seconds: float) -> None:
    """`asyncio.sleep` for a background loop: woken by the tick if the process has one."""
    loop = asyncio.get_running_loop()
    ticks = _ticking.get(loop)
    if ticks is None:
        await asyncio.sleep(seconds)
        return
    future: asyncio.Future[None] = loop.create_future()
    timer = ticks.call_at(loop.time() + seconds, lambda: _wake(future))
    try:
        await future
    finally:
        timer.cancel()
