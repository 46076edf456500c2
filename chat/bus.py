"""The doorbell between `web` processes: publish bytes on a channel, get them elsewhere.

PostgreSQL is the log; the bus only says "something happened" (and, to save a read, what).
A bus may lose messages while it is down; `on_reconnect` is called after it comes back so
the owner can catch up from PostgreSQL. Backends: `bus_redis` (one Redis or Sentinel),
`bus_cluster` (a Redis Cluster) and `bus_memory` (one process; unit tests), held to one
contract by tests/chat/test_bus.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Handler = Callable[[str, bytes], None]


class Reconnected(Protocol):
    """Called once the bus is back after it may have lost rings. `only`: the channels that
    may have lost some (a cluster bus recovers one master's partitions at a time); None:
    any channel."""

    def __call__(self, only: frozenset[str] | None = None) -> Awaitable[None]: ...


Receivers = Callable[[int], None]  # how many subscribers a PUBLISH reached


class Bus(Protocol):
    async def start(self, handler: Handler, on_reconnect: Reconnected) -> None:
        """Begin delivering messages of subscribed channels to `handler`."""

    async def close(self) -> None: ...

    async def publish(self, channel: str, data: bytes) -> bool:
        """Best effort: False when the bus is down (the caller has already stored the truth)."""

    def post(self, channel: str, data: bytes, on_receivers: Receivers | None = None) -> None:
        """`publish` without waiting for it, in the same order as every other publish of
        this bus: the hot path's fan-out (a lost ring is repaired by sequence).
        `on_receivers` is called with how many subscribers got it, if it went out."""

    def confirmed(self, channel: str) -> bool:
        """This bus's subscription to `channel` is in effect (Redis confirmed it), so a
        PUBLISH sent from now on reaches it."""

    async def subscribe(self, channel: str) -> None:
        """Returns once the subscription is in effect (or, if the bus is down, recorded
        for when it is back)."""

    async def unsubscribe(self, channel: str) -> None: ...

    @property
    def healthy(self) -> bool: ...
