"""One authenticated socket: its bounded outbound queue and the writer that drains it.

Every frame for a socket goes through `push()`, which sends it at once when nothing is
queued ahead of it and the socket can take it, and otherwise queues it for one writer
task that sends in order. The queue and the writer exist only while something is queued
(most sockets, idle most of the time, never need either: an asyncio.Queue and a parked
task were about 4.4 KiB of every idle socket).
Message frames carry (conversation_id, seq): the writer drops one it has already sent,
and when one arrives ahead of a gap it first reads the missing messages from PostgreSQL,
so each device sees each conversation as one gap-free sequence whatever the bus did (the
bookkeeping of that order is chat/gateway/ordering.py, the reads chat/gateway/catchup.py).
A client that stops reading fills its queue and is closed with 4008, keeping our memory
bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from chat.gateway import catchup
from chat.gateway.catchup import Backfill, CatchUpFailed, SendText
from chat.gateway.ordering import Ordering
from chat.gateway.ordering import Outbound as Outbound  # re-exported: every importer takes it from here
from chat.metrics import METRICS
from chat.people import Person
from protocol.codec import encode
from protocol.codes import CloseCode
from protocol.frames import Frame, Role

log = logging.getLogger("peerchat.session")


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Send every stored message of the conversation after what this socket has seen."""

    conversation_id: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str = ""


Item = Outbound | CatchUp | Close
# Send encoded text frames now, in one write, if the socket can take them; False (and
# nothing sent) if it cannot yet.
SendNow = Callable[[list[bytes]], bool]
CloseSocket = Callable[[int, str], Coroutine[Any, Any, None]]
# Cut the connection now, without a close frame.
AbortSocket = Callable[[], None]


# How long a refused socket's close frame may wait behind its queued frames (a client that
# stopped reading) before the connection is cut without it.
CLOSE_GRACE_S = 5.0


class SlowConsumer(Exception):
    pass


class Session:
    def __init__(
        self,
        *,
        user_id: str,
        role: Role,
        name: str,
        send_text: SendText,
        close_socket: CloseSocket,
        backfill: Backfill,
        max_queue: int,
        send_now: SendNow | None = None,
        abort_socket: AbortSocket | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.user_id = user_id
        self.role: Role = role
        # Who this is: the pair, never the `sub` alone (chat/people.py).
        self.person = Person(role, user_id)
        self.name = name
        self._send_text = send_text
        self._send_now = send_now
        self._close_socket = close_socket
        self._abort_socket = abort_socket
        self._abort_timer: asyncio.TimerHandle | None = None
        self._backfill = backfill
        # What waits for the writer, in order; created on first use. The writer task runs
        # only while it is not empty (and the session has started).
        self._queue: deque[Item] | None = None
        self._max_queue = max_queue
        self._started = False
        # Fan-out that arrives between attaching to the hub and `start()`: it must follow
        # the `welcome` and the resume catch-up, never come before them.
        self._early: list[Item] | None = []
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None  # a reference, so it is not collected
        # The gap-free order per conversation (chat/gateway/ordering.py); `seen` (highest
        # seq sent, per conversation this socket knows about) and `ended` (conversations it
        # has been told ended) are read and written by the handlers too.
        self._order = Ordering(on_gap=self._gap_timeout)
        self.seen = self._order.seen
        self.ended = self._order.ended
        self._held = self._order.held
        # Conversations this socket was told were handed on (PRODUCT.md §9): nothing more of
        # them reaches it, so it is behind on none of them (chat/upkeep/repair.py). A plain
        # attribute, not a property: the repair round reads it for every socket.
        self.handed_on = self._order.handed_on
        self.closed = False
        # The server ended this socket's right to act (see `refuse`): its frames are dropped.
        self.refused = False
        # This socket's sends still being committed (chat/delivery/send.py).
        self.sending: set[asyncio.Future[Any]] = set()
        self.watching_queue = False
        self.watching_stats = False

    def know(self, conversation_id: str, seq: int) -> None:
        """Everything of the conversation up to `seq` has been sent (a `welcome`, a
        supervisor's watch). `seen` is written only through here and the ordering, so the
        delivery repair knows when it changed (chat/gateway/ordering.py `Changes`)."""
        self._order.know(conversation_id, seq)

    def forget(self, conversation_id: str) -> None:
        """Nothing more of the conversation is for this socket (a supervisor's unwatch)."""
        self._order.forget(conversation_id)

    def start(self) -> None:
        """Start sending: first what was pushed (the `welcome`, the catch-up), then the
        fan-out delivered meanwhile; duplicates among those are dropped by seq."""
        early, self._early = self._early or [], None
        self._started = True
        self._wake_writer()
        for item in early:
            self.push(item)

    def deliver(self, item: Item) -> None:
        """Fan-out from the hub (this process or the bus). Held back until `start()`."""
        if (
            self.role == "supervisor"
            and isinstance(item, Outbound)
            and item.conversation_id is not None
            and item.conversation_id not in self.seen
        ):
            return  # a conversation this supervisor socket does not (or no longer) watch
        if self._early is None:
            self.push(item)
        elif len(self._early) < self._max_queue:
            self._early.append(item)
        else:
            self._early = None  # the bound holds before start too
            self._slow()

    def push(self, *items: Item) -> None:
        """Send or queue frames, in order, without waiting. A full queue means the client
        stopped reading.

        When nothing is queued ahead of them, the writer is idle and the socket can take
        them now (`send_now`), in-order frames are sent here and then, several in one
        write: no queue, no writer wake-up. Anything that needs an await (a gap to read
        from PostgreSQL, a close, a full socket buffer) goes through the queue, behind
        which everything else then waits, so the order is the order of `push` calls
        either way."""
        if self.closed:
            return
        if self._send_now is None or not self._started or self._writer is not None or self._queue:
            for item in items:
                self._enqueue(item)
            return
        payloads: list[bytes] = []
        for i, item in enumerate(items):
            if not isinstance(item, Outbound) or (item.seq is None and item.conversation_id in self._held):
                self._send_or_queue(payloads)
                for rest in items[i:]:
                    self._enqueue(rest)
                return
            payloads += self._order.plan(item)
        self._send_or_queue(payloads)

    def _send_or_queue(self, payloads: list[bytes]) -> None:
        assert self._send_now is not None
        if payloads and not self._send_now(payloads):
            # The socket's buffer is full (or it is going): these wait in order for the
            # writer, which waits for the buffer to drain.
            for data in payloads:
                self._enqueue(Outbound(data))

    def _enqueue(self, item: Item) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= self._max_queue:
            self._slow()
            return
        queue.append(item)
        self._wake_writer()

    def _wake_writer(self) -> None:
        """Start the writer if something waits for it (after `start`, never twice)."""
        if self._writer is None and self._started and self._queue and not self.closed:
            self._writer = asyncio.get_running_loop().create_task(self._drain(), name=f"writer-{self.id[:8]}")

    def _slow(self) -> None:
        if self.closed:
            return
        self.closed = True
        METRICS.slow_consumers.inc()
        log.info("closing slow consumer %s", self.id[:8])
        # The socket's own buffers are full, so the close frame waits behind them: a client
        # that resumes reading gets what was buffered, then 4008; one that never does is
        # dropped by the WebSocket ping timeout. Either way nothing more is queued here.
        self._closer = asyncio.get_running_loop().create_task(
            self._close_socket(CloseCode.SLOW_CONSUMER, "slow consumer")
        )

    def push_frame(self, frame: Frame) -> None:
        self.push(Outbound(encode(frame)))

    def close_soon(self, code: int, reason: str = "") -> None:
        """Close after the frames already queued have been sent."""
        if self.closed:
            return
        if self._queue is not None and len(self._queue) >= self._max_queue:
            self.closed = True
            self._closer = asyncio.get_running_loop().create_task(self._close_socket(code, reason))
            return
        self._enqueue(Close(code, reason))

    def refuse(self, code: int, reason: str) -> None:
        """The socket may do nothing more: its token expired or was revoked, its `reauth`
        was refused, the person was erased. From now on every frame it sends is dropped
        (chat/handlers/router.py, the gateway's direct path); what was queued for it is
        still sent, then the close. The close frame waits behind that queue, and a client
        that stopped reading would hold it there for ever, so after CLOSE_GRACE_S the
        connection is cut without it."""
        self.refused = True
        self.close_soon(code, reason)
        if self._abort_timer is None and self._abort_socket is not None:
            self._abort_timer = asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self._abort_socket)

    async def stop(self) -> None:
        self.closed = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _drain(self) -> None:
        """Send what is queued, in order, then end (`_wake_writer` starts another when
        something is queued again)."""
        queue = self._queue
        assert queue is not None
        try:
            while queue:
                item = queue.popleft()
                if isinstance(item, Close):
                    self.closed = True
                    await self._close_socket(item.code, item.reason)
                    return
                if isinstance(item, CatchUp):
                    await catchup.fill(self._order, self._backfill, self._send_text, item.conversation_id)
                    continue
                if item.conversation_id in self._held and item.seq is None:
                    # Anything else about a conversation with messages held (its end, say)
                    # must not overtake them: fill the gap from PostgreSQL first.
                    await catchup.fill(self._order, self._backfill, self._send_text, item.conversation_id)
                for data in self._order.plan(item):
                    await self._send_text(data)
        except asyncio.CancelledError:
            raise
        except CatchUpFailed as exc:
            # PostgreSQL could not fill a gap. Skipping it would break the promise of a
            # gap-free sequence and waiting would leave the client silent, so close: the
            # client reconnects (to any process) and resumes from its last seq.
            log.warning("writer %s: catch-up failed: %s; closing", self.id[:8], exc)
            self.closed = True
            await self._close_socket(CloseCode.INTERNAL_ERROR, "catch-up failed; reconnect and resume")
        except Exception as exc:  # the socket went away under us; the reader will notice too
            log.debug("writer %s stopped: %s", self.id[:8], type(exc).__name__)
            self.closed = True
        finally:
            self._writer = None
            if not queue:
                self._queue = None  # an idle socket keeps no queue

    def _gap_timeout(self, conversation_id: str) -> None:
        self.push(CatchUp(conversation_id))
