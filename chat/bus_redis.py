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

from chat.bus import Handler, Receivers, Reconnected

log = logging.getLogger("peerchat.bus")
_CONTROL = "pc:control"  # always subscribed, so the reader has something to listen to
CONFIRM_TIMEOUT_S = 2.0  # how long subscribe() waits for Redis to confirm


class RedisBus:
    def __init__(self, url: str) -> None:
        self._url = url
        self._publisher = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._outbox: list[tuple[str, bytes, asyncio.Future[bool] | None, Receivers | None]] = []
        self._sender: asyncio.Task[None] | None = None
        self._channels: set[str] = {_CONTROL}
        self._pubsub: redis.client.PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._handler: Handler | None = None
        self._on_reconnect: Reconnected | None = None
        self._healthy = False
        self._connected = asyncio.Event()
        # Channels whose SUBSCRIBE Redis confirmed on the current connection, and who waits.
        self._confirmed: set[str] = set()
        self._confirm_waiters: dict[str, asyncio.Future[None]] = {}
        self._after_reconnect: asyncio.Task[None] | None = None

    async def start(self, handler: Handler, on_reconnect: Reconnected) -> None:
        self._handler, self._on_reconnect = handler, on_reconnect
        self._task = asyncio.create_task(self._run(), name="redis-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 3)

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for _, _, done, _ in self._outbox:
            if done is not None and not done.done():
                done.set_result(False)
        if self._after_reconnect is not None:
            self._after_reconnect.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._publisher.aclose()

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def publish(self, channel: str, data: bytes) -> bool:
        """Queue a PUBLISH; everything queued while the previous batch was on the wire goes
        out as one pipeline, in order. Returns once it went out (False if Redis is down)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, data, done, None))
        self._wake_sender()
        return await done

    def post(self, channel: str, data: bytes, on_receivers: Receivers | None = None) -> None:
        self._outbox.append((channel, data, None, on_receivers))
        self._wake_sender()

    def confirmed(self, channel: str) -> bool:
        return self._healthy and channel in self._confirmed

    def _wake_sender(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_outbox(), name="redis-publish")

    async def _send_outbox(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                pipe = self._publisher.pipeline(transaction=False)
                for channel, data, _, _ in batch:
                    pipe.publish(channel, data)
                counts: list[int | None] = list(await pipe.execute())
                ok = True
            except (RedisError, OSError):
                self._healthy = False
                ok = False
                counts = [None] * len(batch)
            for (_, _, done, on_receivers), count in zip(batch, counts, strict=True):
                if done is not None and not done.done():
                    done.set_result(ok)
                if on_receivers is not None and count is not None:
                    try:
                        on_receivers(int(count))
                    except Exception:
                        log.exception("publish callback failed")

    async def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        self._channels.add(channel)
        if self._pubsub is not None and self._healthy:
            waiter = self._confirm_waiters[channel] = asyncio.get_running_loop().create_future()
            try:
                await self._pubsub.subscribe(channel)
                # Until Redis confirms, a PUBLISH from elsewhere may not reach us: the
                # caller reads state after this, so nothing may fall in between.
                await asyncio.wait_for(waiter, CONFIRM_TIMEOUT_S)
            except (RedisError, OSError):
                self._healthy = False  # the reader resubscribes everything on reconnect
            except TimeoutError:
                log.warning("redis did not confirm a subscription within %.0f s", CONFIRM_TIMEOUT_S)
            finally:
                if self._confirm_waiters.get(channel) is waiter:
                    del self._confirm_waiters[channel]

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._confirmed.discard(channel)
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
            pubsub = client.pubsub(ignore_subscribe_messages=False)
            try:
                await self._subscribe_all(pubsub)
                self._pubsub = pubsub
                self._healthy = True
                self._connected.set()
                delay = 0.05
                if not first:
                    log.warning("redis bus reconnected; catching up from PostgreSQL")
                    # After the resubscriptions are confirmed (the reader sees them), so
                    # what the owner does then is heard by every channel it holds.
                    self._after_reconnect = asyncio.create_task(self._reconnected(), name="bus-reconnected")
                first = False
                await self._read(pubsub)
            except (RedisError, OSError) as exc:
                if self._healthy or first:
                    log.warning("redis bus lost: %s", type(exc).__name__)
                self._healthy = False
            finally:
                self._pubsub = None
                self._confirmed.clear()
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

    async def _reconnected(self) -> None:
        deadline = asyncio.get_running_loop().time() + CONFIRM_TIMEOUT_S
        # Polled: confirmations arrive one channel at a time, for a set that may change.
        while not self._channels <= self._confirmed and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._on_reconnect is not None:
            try:
                await self._on_reconnect()
            except Exception:
                log.exception("catching up after a bus reconnect failed")

    def _on_subscription(self, kind: str, name: str) -> None:
        if kind == "subscribe":
            if name in self._channels:
                self._confirmed.add(name)
            waiter = self._confirm_waiters.pop(name, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        else:
            self._confirmed.discard(name)

    async def _read(self, pubsub: redis.client.PubSub) -> None:
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            kind = None if msg is None else msg.get("type")
            if kind != "message":
                if msg is not None and kind in ("subscribe", "unsubscribe"):
                    raw = msg["channel"]
                    self._on_subscription(kind, raw.decode() if isinstance(raw, bytes) else str(raw))
                if not self._healthy:  # a subscribe failed elsewhere: start over
                    raise ConnectionError("resubscribe")
                continue
            assert msg is not None
            channel = msg["channel"]
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            if self._handler is not None:
                try:
                    self._handler(name, msg["data"])
                except Exception:
                    log.exception("bus handler failed on %s", name)
