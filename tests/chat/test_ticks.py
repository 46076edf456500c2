"""chat/ticks.py: timers on the process's tick fire at the first tick at or after their
time, never early; a cancelled one never fires; a tick that stops hands its timers to the
loop; without a tick, `sleep` and `call_at` are the loop's own."""

from __future__ import annotations

import asyncio

from chat import ticks


async def test_a_timer_fires_on_the_first_tick_at_or_after_its_time_and_never_early() -> None:
    loop = asyncio.get_running_loop()
    timers = ticks.Ticks(loop)
    fired: list[str] = []
    base = loop.time()
    timers.call_at(base + 0.25, lambda: fired.append("a"))
    timers.call_at(base + 0.1, lambda: fired.append("b"))
    cancelled = timers.call_at(base + 0.1, lambda: fired.append("c"))
    cancelled.cancel()
    timers.run(base + 0.05)
    await asyncio.sleep(0)
    assert fired == []
    timers.run(base + 0.15)
    await asyncio.sleep(0)
    assert fired == ["b"]
    timers.run(base + 0.3)
    await asyncio.sleep(0)
    assert fired == ["b", "a"]
    assert len(timers) == 0


async def test_a_raising_timer_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context.get("exception")))
    try:
        timers = ticks.Ticks(loop)
        fired: list[int] = []
        timers.call_at(loop.time(), lambda: 1 / 0)
        timers.call_at(loop.time(), lambda: fired.append(1))
        timers.run(loop.time())
        await asyncio.sleep(0)
        assert fired == [1]
        assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)
    finally:
        loop.set_exception_handler(None)


async def test_sleep_is_woken_by_the_tick_and_a_stopped_tick_hands_over_to_the_loop() -> None:
    loop = asyncio.get_running_loop()
    timers = ticks.start(loop)
    try:
        assert ticks.ticking(loop)
        began = loop.time()
        short = asyncio.create_task(ticks.sleep(0.05))
        long = asyncio.create_task(ticks.sleep(0.2))
        await asyncio.sleep(0.1)
        assert not short.done()  # no tick yet: nothing wakes it
        timers.run(loop.time())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert short.done() and not long.done()
        ticks.stop(loop)
        assert not ticks.ticking(loop)
        await asyncio.wait_for(long, 1)  # on the loop's own timer now
        assert loop.time() - began >= 0.2
    finally:
        ticks.stop(loop)


async def test_without_a_tick_sleep_and_call_at_are_the_loops_own() -> None:
    loop = asyncio.get_running_loop()
    assert not ticks.ticking(loop)
    fired = asyncio.Event()
    handle = ticks.call_at(loop, loop.time() + 0.05, fired.set)
    assert isinstance(handle, asyncio.TimerHandle)
    began = loop.time()
    await ticks.sleep(0.05)
    assert loop.time() - began >= 0.05
    await asyncio.wait_for(fired.wait(), 1)


async def test_a_cancelled_sleep_leaves_no_timer_behind() -> None:
    loop = asyncio.get_running_loop()
    timers = ticks.start(loop)
    try:
        task = asyncio.create_task(ticks.sleep(10))
        await asyncio.sleep(0)
        assert len(timers) == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert len(timers) == 0
    finally:
        ticks.stop(loop)


async def test_a_second_start_on_a_ticking_loop_loses_none_of_the_first_ones_timers() -> None:
    """Two servers in one loop (tests/support/inprocess.py serves in the test's own loop):
    the second's start must not orphan what already waits on the first's tick (a sleeper,
    the keepalive ring's turn), which the first's stop would then never hand to the loop."""
    loop = asyncio.get_running_loop()
    ticks.start(loop)  # the first server
    try:
        fired = asyncio.Event()
        ticks.call_at(loop, loop.time() + 0.05, fired.set)  # waits on its tick
        ticks.start(loop)  # a second server starts in the same loop
        ticks.stop(loop)  # one of them stops: what still waits goes to the loop's timers
        await asyncio.wait_for(fired.wait(), 2)
    finally:
        ticks.stop(loop)
