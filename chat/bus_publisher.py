"""The bus's publishing half: PUBLISHes out on one bare RESP connection (chat/resp.py),
replies matched in order (chat/bus_redis.py holds the subscribing half). The cluster bus
(chat/bus_cluster.py) runs one per master, with SPUBLISH, and is told of a refused one
(MOVED) so it can read the slot map again.

Publishes from one loop turn go out as one write; replies come back in order and resolve
each publish's future or callback. Nothing waits for a previous batch. If the connection
is lost (or answers nothing for PUBLISH_TIMEOUT_S), the publishes it did not answer are
written again on the next one: receivers drop repeats by seq. If Redis cannot be reached
at all, the rings are failed and `on_lost` tells the bus, which drops its subscriber so
the owner catches up from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import hiredis
from redis.exceptions import RedisError

from chat import resp
from chat.bus import Receivers

log = logging.getLogger("peerchat.bus")
CONNECT_TIMEOUT_S = 2.0
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


class Resolve(Protocol):
    """Where to connect, asked before every connection: a fixed address, or the master a
    Sentinel set names at that moment (chat/redisconn.py), so a promotion is followed."""

    async def __call__(self) -> resp.Address: ...

    async def aclose(self) -> None: ...


class Fixed:
    def __init__(self, address: resp.Address) -> None:
        self._address = address

    async def __call__(self) -> resp.Address:
        return self._address

    async def aclose(self) -> None:
        return None


class Publisher:
    def __init__(
        self,
        resolve: Resolve,
        on_lost: Callable[[], None],
        *,
        verb: str = "PUBLISH",
        on_refused: Callable[[str, resp.Reply], None] | None = None,
    ) -> None:
        """`on_lost`: some rings did not go out (the bus drops its subscriber, so the owner
        catches up from PostgreSQL). `resolve`: where Redis is, asked before each connect.
        `verb`: PUBLISH, or SPUBLISH on a cluster. `on_refused(channel, error)`: Redis
        answered a publish with an error (a cluster's MOVED), which fails that publish."""
        self._resolve = resolve
        self._lost_publishes = on_lost
        self._verb = verb
        # Every PUBLISH is the same three-part command but for the channel and the ring: its
        # start made once, the rest with one %-format (resp.command's loop over the parts
        # was 1.1 µs of every ring's 1.4).
        verb_bytes = verb.encode()
        self._head = b"*3\r\n$%d\r\n%s\r\n" % (len(verb_bytes), verb_bytes)
        self._on_refused = on_refused
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
        self._closed = False

    def start(self) -> None:
        self._connect_publisher()

    async def close(self) -> None:
        connecting = self._connecting
        self.abort()
        if connecting is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await connecting

    def abort(self) -> None:
        """Stop at once: every publish not yet answered fails."""
        self._closed = True
        for timer in (self._retry_timer, self._reply_timer):
            if timer is not None:
                timer.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        if self._publisher is not None:
            self._publisher.on_lost = None
            self._publisher.abort()
        self._fail_outbox()
        self._fail_pending()

    async def publish(self, channel: str, data: bytes) -> bool:
        """Queue a PUBLISH; everything queued in this loop turn goes out as one write, in
        order. Returns once Redis answered (False if it is down)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue(_Publish(channel, data, done, None))
        return await done

    def post(self, channel: str, data: bytes, on_receivers: Receivers | None = None) -> None:
        self._queue(_Publish(channel, data, None, on_receivers))

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
        wire.send(b"".join([self._command(item.channel, item.data) for item in batch]))
        self._pending.extend((item, sent_at) for item in batch)
        self._watch_replies()

    def _command(self, channel: str, data: bytes) -> bytes:
        """resp.command(verb, channel, data), made cheaply."""
        name = channel.encode()
        return b"%s$%d\r\n%s\r\n$%d\r\n%s\r\n" % (self._head, len(name), name, len(data), data)

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
            if self._on_refused is not None:
                self._on_refused(item.channel, reply)
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
            address = await self._resolve()
            wire = await resp.connect(address, self._on_publish_reply, CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, RedisError) as exc:
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
        if address.password is not None:
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
