"""The bus on Redis pub/sub, supervised, on two bare RESP connections (chat/resp.py).

One reader task (re)connects the subscriber with capped, jittered back-off, subscribes
every channel held in one command, pings it every HEALTH_S (a connection silent for two
of those is dead), and after a reconnect calls `on_reconnect` so the owner catches up
from PostgreSQL. Subscribed messages are handed to the handler straight from the socket's
`data_received`.

Publishes from one loop turn go out as one write on the publisher connection; replies
come back in order and resolve each publish's future or callback. Nothing waits for a
previous batch. If the publisher connection is lost (or answers nothing for
PUBLISH_TIMEOUT_S), the publishes it did not answer are written again on the next one:
receivers drop repeats by seq, so a ring reaches the other processes, whose subscribers
never noticed anything. If Redis cannot be reached at all, the rings are failed and the
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
from collections import deque
from dataclasses import dataclass

import hiredis

from chat import resp
from chat.bus import Handler, Receivers, Reconnected

log = logging.getLogger("peerchat.bus")
_CONTROL = "pc:control"  # always subscribed, so the subscriber is in pub/sub mode
CONFIRM_TIMEOUT_S = 2.0  # how long subscribe() waits for Redis to confirm
CONNECT_TIMEOUT_S = 2.0
HEALTH_S = 5.0  # ping the subscriber this often; two silent periods mean it is dead
MAX_OUTBOX = 50_000  # publishes held while the publisher connects; beyond, they fail
PUBLISHER_RETRY_S = 0.2  # after a failed connect, publishes fail at once for this long

PUBLISH_TIMEOUT_S = 2.0  # a publisher that answers nothing this long is dropped
AUTH_RETRY_S = 1.0  # after Redis refused the credentials


@dataclass(slots=True)
class _Publish:
    channel: str
    data: bytes
    done: asyncio.Future[bool] | None  # publish() waits on it; post() does not
    on_receivers: Receivers | None
    tries: int = 0  # connections it was written on and got no answer

    def fail(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(False)


class RedisBus:
    def __init__(self, url: str) -> None:
        self._address = resp.parse_url(url)
        self._outbox: list[_Publish] = []
        self._flush_soon = False
        self._publisher: resp.Wire | None = None
        # Written, awaiting Redis's reply, with when they were written (None: AUTH).
        self._pending: deque[tuple[_Publish | None, float]] = deque()
        self._connecting: asyncio.Task[None] | None = None
        self._publisher_up = True  # for logging a failure once, not per attempt
        self._retry_at = 0.0
        self._retry_timer: asyncio.TimerHandle | None = None
        self._reply_timer: asyncio.TimerHandle | None = None
        self._channels: set[str] = {_CONTROL}
        self._subscriber: resp.Wire | None = None
        self._task: asyncio.Task[None] | None = None
        self._handler: Handler | None = None
        self._on_reconnect: Reconnected | None = None
        self._healthy = False
        self._closed = False
        self._connected = asyncio.Event()
        # Channels whose SUBSCRIBE Redis confirmed on the current connection, and who waits.
        self._confirmed: set[str] = set()
        self._confirm_waiters: dict[str, asyncio.Future[None]] = {}
        self._after_reconnect: asyncio.Task[None] | None = None
        self._subscribed_once = False

    async def start(self, handler: Handler, on_reconnect: Reconnected) -> None:
        self._handler, self._on_reconnect = handler, on_reconnect
        self._task = asyncio.create_task(self._run(), name="redis-bus")
        self._connect_publisher()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 3)

    async def close(self) -> None:
        self._closed = True
        for timer in (self._retry_timer, self._reply_timer):
            if timer is not None:
                timer.cancel()
        for task in (self._connecting, self._after_reconnect, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for wire in (self._publisher, self._subscriber):
            if wire is not None:
                wire.abort()
        self._fail_outbox()
        self._fail_pending()

    @property
    def healthy(self) -> bool:
        return self._healthy

    # Publishing

    async def publish(self, channel: str, data: bytes) -> bool:
        """Queue a PUBLISH; everything queued in this loop turn goes out as one write, in
        order. Returns once Redis answered (False if it is down)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue(_Publish(channel, data, done, None))
        return await done

    def post(self, channel: str, data: bytes, on_receivers: Receivers | None = None) -> None:
        self._queue(_Publish(channel, data, None, on_receivers))

    def confirmed(self, channel: str) -> bool:
        return self._healthy and channel in self._confirmed

    def _queue(self, item: _Publish) -> None:
        if self._closed:
            item.fail()
            return
        self._outbox.append(item)
        if len(self._outbox) > MAX_OUTBOX:
            self._fail_outbox()
            self._lost_publishes()
            return
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        if not self._outbox:
            return
        wire = self._publisher
        if wire is None or not wire.up:
            self._connect_publisher()  # the outbox waits for it, in order
            return
        batch, self._outbox = self._outbox, []
        sent_at = time.monotonic()
        wire.send(b"".join([resp.command("PUBLISH", item.channel, item.data) for item in batch]))
        self._pending.extend((item, sent_at) for item in batch)
        self._watch_replies()

    def _on_publish_reply(self, reply: resp.Reply) -> None:
        if not self._pending:
            return
        item, _ = self._pending.popleft()
        if item is None:  # the reply to AUTH
            if isinstance(reply, hiredis.ReplyError):
                log.warning("redis refused the bus's credentials")
                self._retry_at = time.monotonic() + AUTH_RETRY_S
                self._drop_publisher()
            return
        if not isinstance(reply, int):
            item.fail()
            return
        if item.done is not None and not item.done.done():
            item.done.set_result(True)
        if item.on_receivers is not None:
            try:
                item.on_receivers(reply)
            except Exception:
                log.exception("publish callback failed")

    def _watch_replies(self) -> None:
        """A publisher that takes our writes but never answers (a connection silently dead)
        is dropped after PUBLISH_TIMEOUT_S, like one that is reset."""
        if self._reply_timer is None and self._pending:
            self._reply_timer = asyncio.get_running_loop().call_later(PUBLISH_TIMEOUT_S, self._check_replies)

    def _check_replies(self) -> None:
        self._reply_timer = None
        if not self._pending:
            return
        if time.monotonic() - self._pending[0][1] >= PUBLISH_TIMEOUT_S:
            log.warning("redis publisher answered nothing for %.0f s; reconnecting", PUBLISH_TIMEOUT_S)
            self._drop_publisher()
        else:
            self._watch_replies()

    def _connect_publisher(self) -> None:
        if self._closed or self._retry_timer is not None:
            return
        if self._connecting is not None and not self._connecting.done():
            return
        wait = self._retry_at - time.monotonic()
        if wait > 0:  # refused a moment ago: try again then, keeping the outbox
            self._retry_timer = asyncio.get_running_loop().call_later(wait, self._retry_publisher)
            return
        self._connecting = asyncio.create_task(self._open_publisher(), name="redis-publisher")

    def _retry_publisher(self) -> None:
        self._retry_timer = None
        if self._outbox:
            self._connect_publisher()

    async def _open_publisher(self) -> None:
        try:
            wire = await resp.connect(self._address, self._on_publish_reply, CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            if self._publisher_up:
                log.warning("redis publisher unreachable: %s", type(exc).__name__)
            self._publisher_up = False
            self._retry_at = time.monotonic() + PUBLISHER_RETRY_S
            # Redis is down: these rings are lost. Everyone's subscriber drops with it and
            # catches up on reconnect; make sure ours does too.
            self._fail_outbox()
            self._lost_publishes()
            return
        if self._closed:
            wire.abort()
            return
        self._publisher_up = True
        if self._address.password is not None:
            self._pending.append((None, time.monotonic()))
        self._publisher = wire
        wire.on_lost = lambda: self._publisher_lost(wire)
        self._flush()

    def _publisher_lost(self, wire: resp.Wire) -> None:
        """Publishes written but unanswered may or may not have reached anyone: send them
        again on the next connection (receivers drop repeats by seq; joins and pokes are
        idempotent). One that was already sent twice fails instead."""
        if self._publisher is not wire:
            return
        self._publisher = None
        unanswered = [item for item, _ in self._pending if item is not None]
        self._pending.clear()
        again = []
        for item in unanswered:
            item.tries += 1
            if item.tries > 1:
                item.fail()
            else:
                again.append(item)
        if len(again) < len(unanswered):
            self._lost_publishes()
        self._outbox[:0] = again
        if self._outbox and not self._closed:
            self._connect_publisher()

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.abort()

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, deque()
        for item, _ in pending:
            if item is not None:
                item.fail()

    def _fail_outbox(self) -> None:
        outbox, self._outbox = self._outbox, []
        for item in outbox:
            item.fail()

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
        waiter = self._confirm_waiters[channel] = asyncio.get_running_loop().create_future()
        try:
            wire.send(resp.command("SUBSCRIBE", channel))
            # Until Redis confirms, a PUBLISH from elsewhere may not reach us: the caller
            # reads state after this, so nothing may fall in between.
            await asyncio.wait_for(waiter, CONFIRM_TIMEOUT_S)
        except TimeoutError:
            log.warning("redis did not confirm a subscription within %.0f s", CONFIRM_TIMEOUT_S)
        finally:
            if self._confirm_waiters.get(channel) is waiter:
                del self._confirm_waiters[channel]

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
            if name in self._channels:
                self._confirmed.add(name)
            waiter = self._confirm_waiters.pop(name, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        else:
            self._confirmed.discard(name)

    async def _run(self) -> None:
        delay = 0.05
        first = True
        # `self._closed` is checked as well as cancellation: Python 3.11's wait_for can
        # swallow a cancel that lands as the connection completes.
        while not self._closed:
            wire: resp.Wire | None = None
            try:
                wire = await resp.connect(self._address, self._on_subscriber_reply, CONNECT_TIMEOUT_S)
                if self._closed:
                    return  # the finally drops the connection
                self._subscriber = wire
                self._subscribed_once = False
                # Every channel held, in one command; subscribe() sends its own from now on.
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
            except (OSError, TimeoutError) as exc:
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
