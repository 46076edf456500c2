"""WebSocket keepalive for every socket of a process on one timer.

uvicorn pings each socket on timers of its own: a `call_later` for the next ping and
another for the pong's deadline, cancelled when the pong comes. Each ping pushed two timer
handles onto the loop's heap of a few thousand and popped them off (every comparison a
Python `TimerHandle.__lt__`), then went through websockets' frame serializer, and each
pong through its generator parser: at 4,000 silent sockets about half of an idle `web`
process's CPU, twice what the bare relay pays for the same pings (docs/performance.md,
round 9, idle).

Here one timer per process ticks every `TICK_S` and looks at one of `interval / TICK_S`
buckets, each socket sitting in one: every socket is looked at once per interval. A socket
whose last ping has had no pong by then is dropped (1011, as upstream's
`keepalive_timeout`); otherwise it is pinged again. So a socket is pinged every interval,
its first ping comes an interval after it opened (less at most one tick), and a peer that
stops answering is dropped one interval after the unanswered ping: uvicorn's
`ws_ping_timeout` is taken to be the interval (chat/cli.py sets both, to 20 s by default).
The socket's side is in chat/gateway/wsproto.py (`keepalive_due`, the pong read there).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

from chat import ticks

TICK_S = 1.0  # four of the process's ticks (chat/ticks.py) where it has them


class Pinged(Protocol):
    def keepalive_due(self) -> bool:
        """Its turn: ping it (True) or, its last ping unanswered or it closing, give up
        on it (False: the ring forgets it)."""


class Ring:
    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float) -> None:
        self._loop = loop
        self._buckets: list[set[Pinged]] = [set() for _ in range(max(1, round(interval_s / TICK_S)))]
        self._cursor = 0
        self._timer: ticks.Cancellable | None = None
        self._next = 0.0

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets)

    def add(self, sock: Pinged) -> int:
        """Keep `sock` alive from now on; its bucket, for `discard`. It goes in the bucket
        just looked at, so its first turn is one whole round from now."""
        slot = self._cursor
        self._buckets[slot].add(sock)
        if self._timer is None:
            self._next = self._loop.time() + TICK_S
            self._timer = ticks.call_at(self._loop, self._next, self._turn)
        return slot

    def discard(self, sock: Pinged, slot: int) -> None:
        self._buckets[slot].discard(sock)

    def _turn(self) -> None:
        self._cursor = (self._cursor + 1) % len(self._buckets)
        bucket = self._buckets[self._cursor]
        for sock in list(bucket):
            try:
                if not sock.keepalive_due():
                    bucket.discard(sock)
            except Exception as exc:
                # One socket's failure must not stop the ring (every other socket would go
                # unpinged and never be dropped): reported as a callback's would be.
                self._loop.call_exception_handler(
                    {"message": "keepalive failed for a socket", "exception": exc, "protocol": sock}
                )
        if not any(self._buckets):
            self._timer = None
            return
        # On a fixed schedule (a late tick does not push every later one back), but after
        # a stall longer than a tick, from now: the buckets skipped wait one tick each.
        now = self._loop.time()
        self._next = max(self._next + TICK_S, now)
        self._timer = ticks.call_at(self._loop, self._next, self._turn)


_rings: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ring] = weakref.WeakKeyDictionary()


def ring(loop: asyncio.AbstractEventLoop, interval_s: float) -> Ring:
    """The loop's ring (one per process: every socket has the same interval)."""
    found = _rings.get(loop)
    if found is None:
        found = _rings[loop] = Ring(loop, interval_s)
    return found
