"""An in-process bus: several `MemoryBus` objects sharing one `MemoryExchange` behave like
processes sharing one Redis. For unit tests of logic that has the Redis backend too."""

from __future__ import annotations

from collections import defaultdict

from chat.bus import Handler, Receivers, Reconnected


class MemoryExchange:
    def __init__(self) -> None:
        self.subscribers: defaultdict[str, set[MemoryBus]] = defaultdict(set)
        self.up = True


class MemoryBus:
    def __init__(self, exchange: MemoryExchange) -> None:
        self._exchange = exchange
        self._handler: Handler | None = None
        self._on_reconnect: Reconnected | None = None

    async def start(self, handler: Handler, on_reconnect: Reconnected) -> None:
        self._handler, self._on_reconnect = handler, on_reconnect

    async def close(self) -> None:
        for subs in self._exchange.subscribers.values():
            subs.discard(self)

    async def publish(self, channel: str, data: bytes) -> bool:
        self.post(channel, data)
        return self._exchange.up

    def post(self, channel: str, data: bytes, on_receivers: Receivers | None = None) -> None:
        if not self._exchange.up:
            return
        receivers = list(self._exchange.subscribers.get(channel, ()))
        for bus in receivers:
            if bus._handler is not None:
                bus._handler(channel, data)
        if on_receivers is not None:
            on_receivers(len(receivers))

    def confirmed(self, channel: str) -> bool:
        return self._exchange.up and self in self._exchange.subscribers.get(channel, ())

    async def subscribe(self, channel: str) -> None:
        self._exchange.subscribers[channel].add(self)

    async def unsubscribe(self, channel: str) -> None:
        self._exchange.subscribers[channel].discard(self)

    @property
    def healthy(self) -> bool:
        return self._exchange.up

    async def simulate_reconnect(self) -> None:
        if self._on_reconnect is not None:
            await self._on_reconnect()
