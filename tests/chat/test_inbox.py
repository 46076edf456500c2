"""chat/gateway/inbox.py: the light queue and flag that uvicorn's websockets protocol keeps
per socket instead of asyncio's (chat/gateway/wsproto.py). Same behaviour for what the
protocol uses; no deque held while empty."""

from __future__ import annotations

import asyncio

import pytest

from chat.gateway.inbox import Flag, Inbox


async def test_the_inbox_hands_items_over_in_order_and_wakes_a_waiting_reader() -> None:
    inbox: Inbox[int] = Inbox()
    assert inbox.empty() and inbox.qsize() == 0
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await asyncio.wait_for(reader, 5) == 1
    assert inbox.qsize() == 1 and not inbox.empty()
    assert await inbox.get() == 2
    assert inbox.empty() and inbox._items is None  # nothing held while empty
    with pytest.raises(asyncio.QueueEmpty):
        inbox.get_nowait()


async def test_a_cancelled_reader_leaves_the_inbox_usable() -> None:
    inbox: Inbox[str] = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait("after")
    assert await asyncio.wait_for(inbox.get(), 5) == "after"


async def test_the_flag_wakes_every_waiter_when_set_and_blocks_again_when_cleared() -> None:
    flag = Flag(True)
    assert flag.is_set() and await flag.wait()
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [True, True, True]
    assert flag._flag_waiters is None


async def test_a_cancelled_flag_waiter_is_forgotten() -> None:
    flag = Flag()
    waiter = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not flag._flag_waiters
    flag.set()
    assert flag.is_set()
