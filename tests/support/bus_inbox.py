"""What a bus (chat/bus.py) delivers to one test "process": every (channel, payload) in
arrival order, and each catch-up it asked its owner for. Pass `handler` and `on_reconnect`
to `Bus.start`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from chat.bus import Bus


@dataclass
class Inbox:
    got: list[tuple[str, bytes]] = field(default_factory=list)
    # Each catch-up the bus asked for: None after losing everything, or else only the
    # channels of the partitions it lost (chat/bus_cluster.py).
    caught_up: list[frozenset[str] | None] = field(default_factory=list)

    def handler(self, channel: str, data: bytes) -> None:
        self.got.append((channel, data))

    async def on_reconnect(self, only: frozenset[str] | None = None) -> None:
        self.caught_up.append(only)

    @property
    def reconnects(self) -> int:
        return len(self.caught_up)

    def on(self, channel: str) -> list[bytes]:
        """What arrived on `channel`, leaving out the `probe:` payloads a test sends to learn
        that a subscription delivers (tests/chat/test_bus.py)."""
        return [d for c, d in self.got if c == channel and not d.startswith(b"probe:")]


@asynccontextmanager
async def started(*buses: Bus) -> AsyncIterator[list[Inbox]]:
    """Start each bus (a "process") with an Inbox of its own, in order; close them all when
    the block ends."""
    inboxes = [Inbox() for _ in buses]
    for bus, inbox in zip(buses, inboxes, strict=True):
        await bus.start(inbox.handler, inbox.on_reconnect)
    try:
        yield inboxes
    finally:
        for bus in buses:
            await bus.close()
