"""The bus on Redis pub/sub, supervised, on two bare RESP connections (chat/resp.py).

One reader task (re)connects the subscriber with capped, jittered back-off, subscribes
every channel held in one command, pings it every HEALTH_S (a connection silent for two
of those is dead), and after a reconnect calls `on_reconnect` so the owner catches up
from PostgreSQL. Subscribed messages are handed to the handler straight from the socket's
`data_received`.

Publishing is chat/bus_publisher.py: one write per loop turn on its own connection, and
the publishes a lost connection did not answer written again on the next one (receivers
drop repeats by seq). If Redis cannot be reached at all, the rings are failed and the
subscriber is dropped as well: the reconnect that follows tells the owner (and, Redis
being down for everyone, every other process) to catch up from PostgreSQL. A lost ring
costs a read, never a missing message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import hiredis
from redis.exceptions import RedisError

from chat import resp
from chat.bus import Handler, Receivers, Reconnected
from chat.bus_publisher import CONNECT_TIMEOUT_S, Fixed, Publisher, Resolve

log = logging.getLogger("peerchat.bus")
_CONTROL = "pc:control"  # always subscribed, so the subscriber is in pub/sub mode
CONFIRM_TIMEOUT_S = 2.0  # how long subscribe() waits for Redis to confirm
HEALTH_S = 5.0  # ping the subscriber this often; two silent periods mean it is dead


class RedisBus:
    def __init__(self, url: str | None = None, *, resolve: Resolve | None = None) -> None:
        """One Redis by `url`, or wherever `resolve` says before each (re)connect: a Sentinel
        set's master of the moment (chat/redisconn.py), so a promotion is followed. On a
        demoted master Sentinel kills our clients; the reconnect asks again."""
        if resolve is None:
            if url is None:
                raise ValueError("RedisBus needs a url or a resolve")
            resolve = Fixed(resp.parse_url(url))
        self._resolve = resolve
        self.publisher = Publisher(resolve, self._lost_publishes)
        self._channels: set[str] = {_CONTROL}
        self._subscriber: resp.Wire | None = None
        self._task: asyncio.Task[None] | None = None
        self._handler: Handler | None = None
        self._on_reconnect: Reconnected | None = None
        self._healthy = False
        self._closed = False
        self._connected = asyncio.Event()
        # Channels whose SUBSCRIBE Redis confirmed on the current connection. A channel may
        # be subscribed, unsubscribed and subscribed again within one round trip: Redis
        # answers in order, so the SUBSCRIBEs sent for each channel on this connection and
        # the confirmations heard are counted, and each waiter waits for its own number
        # (one per channel would let the first confirmation release the second subscribe).
        self._confirmed: set[str] = set()
        self._sent: dict[str, int] = {}
        self._heard: dict[str, int] = {}
        self._confirm_waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self._after_reconnect: asyncio.Task[None] | None = None
        self._subscribed_once = False

    async def start(self, handler: Handler, on_reconnect: Reconnected) -> None:
        self._handler, self._on_reconnect = handler, on_reconnect
        self._task = asyncio.create_task(self._run(), name="redis-bus")
        self.publisher.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 3)

    async def close(self) -> None:
        self._closed = True
        await self.publisher.close()
        for task in (self._after_reconnect, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._subscriber is not None:
            self._subscriber.abort()
        await self._resolve.aclose()

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def publish(self, channel: str, data: bytes) -> bool:
        """Queue a PUBLISH; everything queued in this loop turn goes out as one write, in
        order. Returns once Redis answered (False if it is down)."""
        return await self.publisher.publish(channel, data)

    def post(self, channel: str, data: bytes, on_receivers: Receivers | None = None) -> None:
        self.publisher.post(channel, data, on_receivers)

    def confirmed(self, channel: str) -> bool:
        return self._healthy and channel in self._confirmed

    def _lost_publishes(self) -> None:
        """Some rings did not go out: drop the subscriber too, so the reconnect tells the
        owner to catch up from PostgreSQL."""
        self._healthy = False
        if self._subscriber is not None:
            self._subscriber.abort()

    # Subscribing

    async def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        self._channels.add(channel)
        wire = self._subscriber
        if wire is None or not wire.up or not self._healthy:
            return  # recorded; the reader subscribes everything on (re)connect
        number = self._sent[channel] = self._sent.get(channel, 0) + 1
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._confirm_waiters.setdefault(channel, [])
        waiters.append((number, waiter))
        try:
            wire.send(resp.command("SUBSCRIBE", channel))
            # Until Redis confirms, a PUBLISH from elsewhere may not reach us: the caller
            # reads state after this, so nothing may fall in between.
            await asyncio.wait_for(waiter, CONFIRM_TIMEOUT_S)
        except TimeoutError:
            log.warning("redis did not confirm a subscription within %.0f s", CONFIRM_TIMEOUT_S)
        finally:
            waiters = self._confirm_waiters.get(channel, [])
            waiters[:] = [w for w in waiters if w[1] is not waiter]
            if not waiters:
                self._confirm_waiters.pop(channel, None)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._confirmed.discard(channel)
        wire = self._subscriber
        if wire is not None and wire.up:
            wire.send(resp.command("UNSUBSCRIBE", channel))

    def _on_subscriber_reply(self, reply: resp.Reply) -> None:
        if isinstance(reply, list) and len(reply) == 3:
            kind = reply[0]
            if kind == b"message":
                if self._handler is not None:
                    try:
                        self._handler(reply[1].decode(), reply[2])
                    except Exception:
                        log.exception("bus handler failed")
                return
            if kind in (b"subscribe", b"unsubscribe"):
                self._on_subscription(kind.decode(), reply[1].decode())
                return
        if isinstance(reply, hiredis.ReplyError):
            log.warning("redis refused a bus command: %s", str(reply).split(" ", 1)[0])
            if self._subscriber is not None:
                self._subscriber.abort()
        # Anything else is a PONG or an AUTH's OK: heard, nothing to do.

    def _on_subscription(self, kind: str, name: str) -> None:
        self._subscribed_once = True  # Redis took a SUBSCRIBE on this connection (auth passed)
        if kind == "subscribe":
            heard = self._heard[name] = self._heard.get(name, 0) + 1
            # Confirmed once the last SUBSCRIBE sent is, and if no UNSUBSCRIBE came after it.
            if heard >= self._sent.get(name, 0) and name in self._channels:
                self._confirmed.add(name)
            for number, waiter in self._confirm_waiters.get(name, ()):
                if number <= heard and not waiter.done():
                    waiter.set_result(None)
        else:
            self._confirmed.discard(name)
            if name not in self._channels and self._heard.get(name, 0) >= self._sent.get(name, 0):
                self._sent.pop(name, None)  # nothing in flight: forgotten, so the counts
                self._heard.pop(name, None)  # hold only channels in use

    async def _run(self) -> None:
        delay = 0.05
        first = True
        # `self._closed` is checked as well as cancellation: Python 3.11's wait_for can
        # swallow a cancel that lands as the connection completes.
        while not self._closed:
            wire: resp.Wire | None = None
            try:
                address = await self._resolve()
                wire = await resp.connect(address, self._on_subscriber_reply, CONNECT_TIMEOUT_S)
                if self._closed:
                    return  # the finally drops the connection
                self._subscriber = wire
                self._subscribed_once = False
                # Every channel held, in one command; subscribe() sends its own from now on.
                # Anyone still waiting (their SUBSCRIBE went out on a lost connection) waits
                # for this one's confirmation.
                self._sent = dict.fromkeys(self._channels, 1)
                self._heard = {}
                for waiters in self._confirm_waiters.values():
                    waiters[:] = [(1, w) for _, w in waiters]
                wire.send(resp.command("SUBSCRIBE", *sorted(self._channels)))
                self._healthy = True
                self._connected.set()
                if not first:
                    log.warning("redis bus reconnected; catching up from PostgreSQL")
                    # After the resubscriptions are confirmed (the reader sees them), so
                    # what the owner does then is heard by every channel it holds.
                    if self._after_reconnect is not None:
                        self._after_reconnect.cancel()
                    self._after_reconnect = asyncio.create_task(
                        self._reconnected(wire), name="bus-reconnected"
                    )
                first = False
                await self._watch(wire)
                if self._healthy:
                    log.warning("redis bus lost")
                if self._subscribed_once:
                    delay = 0.05  # it worked for a while: the next attempt need not wait long
            except (OSError, TimeoutError, RedisError) as exc:
                if self._healthy or first:
                    log.warning("redis bus unreachable: %s", type(exc).__name__)
            finally:
                self._healthy = False
                self._subscriber = None
                self._confirmed.clear()
                if wire is not None:
                    wire.abort()
            first = False
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    async def _watch(self, wire: resp.Wire) -> None:
        """Until the subscriber is lost: ping it; one that stays silent is dropped."""
        while not self._closed:
            pinged = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(wire.lost), HEALTH_S)
            if wire.lost.done():
                return
            if wire.last_heard < pinged and time.monotonic() - wire.last_heard > 2 * HEALTH_S:
                log.warning("redis bus silent for %.0f s; reconnecting", 2 * HEALTH_S)
                return
            wire.send(resp.command("PING"))

    async def _reconnected(self, wire: resp.Wire) -> None:
        deadline = asyncio.get_running_loop().time() + CONFIRM_TIMEOUT_S
        # Polled: confirmations arrive one channel at a time, for a set that may change.
        while not self._channels <= self._confirmed and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._subscriber is not wire or not wire.up:
            return  # that connection is already gone; the next one will say so
        if self._on_reconnect is not None:
            try:
                await self._on_reconnect()
            except Exception:
                log.exception("catching up after a bus reconnect failed")
