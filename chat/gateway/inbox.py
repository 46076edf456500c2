"""Light stand-ins for the asyncio.Queue and asyncio.Event that uvicorn's websockets
protocol keeps per socket (its `queue` of received events and its `writable` flag).

An asyncio.Queue is three deques and an Event (another deque): about 3.2 KiB, and an Event
0.8 KiB, allocated for every socket up front and held for its life. A silent socket needs
neither: these allocate their deque or waiter list only while something waits, and drop
it again once empty. They keep only what the protocol uses (chat/gateway/wsproto.py
installs them): `put_nowait`, `get`, `get_nowait`, `empty`, `qsize`, `full` for the
queue, one consumer at a time (the socket's ASGI reader); `set`, `clear`, `is_set`,
`wait` for the flag, any number of waiters.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Literal, TypeVar

T = TypeVar("T")


class Inbox(asyncio.Queue[T]):
    def __init__(self) -> None:  # no super().__init__: none of asyncio.Queue's state
        self._items: deque[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def put(self, item: T) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> T:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("Inbox: one consumer at a time")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self.get_nowait()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def full(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<Inbox {self.qsize()} queued>"


class Flag(asyncio.Event):
    def __init__(self, value: bool = False) -> None:  # no super().__init__: no deque
        self._set = value
        self._flag_waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._flag_waiters = self._flag_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> Literal[True]:
        if self._set:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._flag_waiters is None:
            self._flag_waiters = []
        self._flag_waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._flag_waiters is not None and waiter in self._flag_waiters:
                self._flag_waiters.remove(waiter)

    def __repr__(self) -> str:
        return f"<Flag {'set' if self._set else 'unset'}>"
