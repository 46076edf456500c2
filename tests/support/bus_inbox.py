"""What a bus (chat/bus.py) delivers to one test "process": every (channel, payload) in
arrival order, and each catch-up it asked its owner for. Pass `handler` and `on_reconnect`
to `Bus.start`."""

from __future__ import annotations

from dataclasses import dataclass, field


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
