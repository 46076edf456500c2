"""The bus on Redis pub/sub, supervised.

redis-py's asyncio PubSub neither reconnects nor resubscribes by itself. `RedisBus` runs
one reader task that (re)connects with capped, jittered back-off, resubscribes every
channel it holds, and then calls `on_reconnect` so the owner catches up from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import redis.asyncio as redis
from redis.exceptions import RedisError

from chat.bus import Handler, Reconnected

log = logging.getLogger("peerchat.bus")
_CONTROL = "pc:control"  # always subscribed, so the reader has something to listen to


class RedisBus:
    def __init__(self, url: str) -> None:
        self._url = url
        self._publisher = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._channels: set[str] = {_CONTROL}
        self._pubsub: redis.client.PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._handler: Handler | None = None
        self._on_reconnect: Reconnected | None = None
        self._healthy = False
        self._connected = asyncio.Event()

    async def start(self, handler: Handler, on_reconnect: Reconnected) -> None:
        self._handler, self._on_reconnect = handler, on_reconnect
        self._task = asyncio.create_task(self._run(), name="redis-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 3)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._publisher.aclose()

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def publish(self, channel: str, data: bytes) -> bool:
        try:
            await self._publisher.publish(channel, data)
            return True
        except (RedisError, OSError):
            self._healthy = False
            return False

    async def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        self._channels.add(channel)
        if self._pubsub is not None and self._healthy:
            try:
                await self._pubsub.subscribe(channel)
            except (RedisError, OSError):
                self._healthy = False  # the reader resubscribes everything on reconnect

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None and self._healthy:
            try:
                await self._pubsub.unsubscribe(channel)
            except (RedisError, OSError):
                self._healthy = False

    async def _run(self) -> None:
        delay = 0.05
        first = True
        while True:
            client = redis.Redis.from_url(self._url, socket_connect_timeout=2, health_check_interval=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await self._subscribe_all(pubsub)
                self._pubsub = pubsub
                self._healthy = True
                self._connected.set()
                delay = 0.05
                if not first:
                    log.warning("redis bus reconnected; catching up from PostgreSQL")
                    if self._on_reconnect is not None:
                        await self._on_reconnect()
                first = False
                await self._read(pubsub)
            except (RedisError, OSError) as exc:
                if self._healthy or first:
                    log.warning("redis bus lost: %s", type(exc).__name__)
                self._healthy = False
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            first = False
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    async def _subscribe_all(self, pubsub: redis.client.PubSub) -> None:
        """Subscribe every channel held, including any added (or dropped) while the
        SUBSCRIBE was on its way: until `_pubsub` is set, `subscribe()` only records them."""
        done: set[str] = set()
        while True:
            wanted = set(self._channels)
            if wanted - done:
                await pubsub.subscribe(*(wanted - done))
            if done - wanted:
                await pubsub.unsubscribe(*(done - wanted))
            done = wanted
            if done == self._channels:
                return

    async def _read(self, pubsub: redis.client.PubSub) -> None:
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is None or msg.get("type") != "message":
                if not self._healthy:  # a subscribe failed elsewhere: start over
                    raise ConnectionError("resubscribe")
                continue
            channel = msg["channel"]
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            if self._handler is not None:
                try:
                    self._handler(name, msg["data"])
                except Exception:
                    log.exception("bus handler failed on %s", name)
