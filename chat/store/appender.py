"""Group commit for messages: every `send` that arrives while a batch is being committed
joins the next batch, and each batch is one call of `append_batch()` (its statement and
row: chat/store/append_batch.py): one round trip, one transaction, one WAL flush. While
the load keeps the queue from emptying, the next commit waits so more messages share it:
LINGER_S (1 ms) at light loads; from BUSY_RATE messages a millisecond (the arrival rate
over the last cycles, which the policy cannot change) until its oldest message has waited
BUSY_AGE_S, so the batch grows with the load and the commit rate does not.

One batch is in flight at a time per process, so the messages of one sender keep their
order. A caller's `submit()` future resolves (in submission order) after its batch
committed, so an `ack` still never precedes its commit. If a batch fails for a reason
other than the connection (a bad value in one element), its elements are retried one by
one, so one bad message cannot hold the others back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

from chat.metrics import METRICS
from chat.store.append_batch import append_many
from chat.store.conversations import Appended, append
from chat.store.db import STORAGE_DOWN

log = logging.getLogger("peerchat.appender")

PoolConnection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

MAX_BATCH = 256
# At shutdown, how long the last commits may take before their callers are told
# `unavailable` (PostgreSQL hung or partitioned; docs/operations.md).
CLOSE_S = 5.0
RELEASE_S = 2.0
# Under sustained load (work queued when a commit returns), wait this long before the next
# commit so more messages share it. Measured at the goal load: batches 3.2 -> 5 messages,
# PostgreSQL 44 -> 34 % of a core, web 41 -> 35 %, e2e p99 24.5 -> 17 ms (less waiting for
# a core outweighs the added millisecond); 2 ms gave bigger batches but a worse p50/p99.
# The first message after a quiet spell never waits.
LINGER_S = 0.001
# Under heavy load the next commit leaves when its oldest message has waited BUSY_AGE_S
# (at once if it already has, e.g. after a slow commit): one batch in flight, the next
# building meanwhile, a commit about every BUSY_AGE_S whatever the rate. "Heavy" is read
# from the arrival rate (messages a millisecond, averaged over the last cycles), which is
# the clients' and does not depend on this policy. Round 9's rule (3 ms after a batch of 6
# or more) keyed on the last batch's size, which the linger itself sets: it fed back on
# itself and the goal load sat at its edge (batches of 5-9, bistable in a harness).
# Round 10 (pgcost, alternated A/B at the goal load, docs/performance.md): see there.
BUSY_RATE = 1.2  # messages a millisecond, per process (the goal load is ~2)
# Once busy, it stays so down to this share of BUSY_RATE, so a stall that thins one cycle's
# arrivals does not flip the policy back and forth.
BUSY_HOLD = 0.6
BUSY_AGE_S = 0.006
# The rate's average: each cycle's (messages taken / time since the last take) weighs this.
RATE_WEIGHT = 0.2
# When the queue empties, the worker waits this long for the next message, holding its
# connection, before it ends and hands the connection back.
IDLE_KEEP_S = 1.0


@dataclass(slots=True)  # not frozen: one per message, and frozen fields cost 4x to set
class _Item:
    conversation_id: str
    sender_id: str
    sender_role: str
    sender_name: str
    client_msg_id: str
    body: str
    done: asyncio.Future[tuple[Appended, int, datetime]]


class Appender:
    def __init__(
        self, db: asyncpg.Pool[asyncpg.Record], linger_s: float = LINGER_S, busy_age_s: float = BUSY_AGE_S
    ) -> None:
        self._db = db
        self._linger_s = linger_s
        self._busy_age_s = busy_age_s
        self._queue: list[_Item] = []
        self._first_at = 0.0  # time.monotonic() when the oldest queued message came
        self._rate = 0.0  # arrivals per second, averaged over the last cycles
        self._heavy = False  # the rate is (or was, above BUSY_HOLD of it) BUSY_RATE or more
        self._worker: asyncio.Task[None] | None = None
        # Set while the worker waits, connection in hand, for the next message (IDLE_KEEP_S).
        self._waiting: asyncio.Future[bool] | None = None
        self._closed = False
        self.batches = 0  # for tests and metrics: how many round trips so far
        self.workers_started = 0  # for tests: tasks started (one per busy spell, not per batch)

    def submit(
        self,
        *,
        conversation_id: str,
        sender_id: str,
        sender_role: str,
        sender_name: str,
        client_msg_id: str,
        body: str,
    ) -> asyncio.Future[tuple[Appended, int, datetime]]:
        """Like `conversations.append`, batched with whatever else is being sent: the
        future resolves once the batch has committed. Futures resolve in the order they
        were submitted."""
        done: asyncio.Future[tuple[Appended, int, datetime]] = asyncio.get_running_loop().create_future()
        if self._closed:
            done.set_exception(ConnectionError("shutting down: nothing was stored"))
            return done
        if not self._queue:
            self._first_at = time.monotonic()
        self._queue.append(
            _Item(conversation_id, sender_id, sender_role, sender_name, client_msg_id, body, done)
        )
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            if not waiting.done():
                waiting.set_result(True)
        elif self._worker is None or self._worker.done():
            self.workers_started += 1
            self._worker = asyncio.create_task(self._drain(), name="message-appender")
        return done

    async def close(self, timeout_s: float = CLOSE_S) -> None:
        """Commit what was submitted; refuse anything later (the caller's `unavailable`).
        Bounded: a PostgreSQL that does not answer (hung, partitioned) must not keep the
        process from exiting, so after `timeout_s` the worker is cancelled and every
        caller still waiting gets the error (nothing acked; clients retry elsewhere, and a
        batch that did commit is recognised by its client_msg_id)."""
        self._closed = True
        self._stop_waiting()
        worker = self._worker
        if worker is None or worker.done():
            return
        done, _ = await asyncio.wait({worker}, timeout=timeout_s)
        if not done:
            log.warning(
                "message commits still waiting on PostgreSQL after %.0f s; giving up on them", timeout_s
            )
            worker.cancel()
            await asyncio.wait({worker})  # its own failures went to the callers

    async def _drain(self) -> None:
        # One connection for as long as there is work: under load the queue never empties,
        # so the pool's acquire and release (about 3 % of a web process's CPU when done
        # per batch) happen once, not per batch. A failed batch hands the connection back
        # and the rest go on a fresh one. The queue is checked again after every release:
        # an `append` that came in meanwhile saw this task still running and started none.
        batch: list[_Item] = []
        try:
            while self._queue:
                try:
                    conn = await self._db.acquire()
                except Exception as exc:
                    self._failed(self._take(), exc)
                    continue
                try:
                    busy = False  # a batch before this one, on this connection, with no quiet between
                    taken_at = 0.0  # when the batch before was taken (none yet on this connection)
                    while True:
                        if not self._queue:
                            # Quiet for a moment: wait for the next message with the
                            # connection in hand rather than end the task, hand the
                            # connection back and start both again for the next one (a
                            # task, a pool acquire and release per quiet moment).
                            quiet_from = time.monotonic()
                            if not await self._next_message(IDLE_KEEP_S) or conn.is_closed():
                                break
                            # The first after a quiet spell never waits; under heavy load a
                            # gap shorter than the busy age is no quiet spell (the queue
                            # emptied for a moment, e.g. a burst committed at once).
                            if not self._heavy or time.monotonic() - quiet_from >= self._busy_age_s:
                                busy = False
                        if busy and self._linger_s > 0 and len(self._queue) < MAX_BATCH:
                            # Still busy: let more join.
                            if self._heavy:
                                wait = self._first_at + self._busy_age_s - time.monotonic()
                            else:
                                wait = self._linger_s
                            if wait > 0:
                                await asyncio.sleep(wait)
                        batch = self._take()
                        now = time.monotonic()
                        if taken_at and now > taken_at:
                            self._rate += RATE_WEIGHT * (len(batch) / (now - taken_at) - self._rate)
                            self._heavy = self._rate >= BUSY_RATE * (BUSY_HOLD if self._heavy else 1) * 1000
                        taken_at = now
                        busy = True
                        try:
                            await self._commit(conn, batch)
                        except Exception as exc:
                            self._failed(batch, exc)
                            break
                finally:
                    # Bounded: after a cancelled or timed-out commit asyncpg resets the
                    # connection, which a hung server never answers (it is dropped then).
                    with contextlib.suppress(Exception):
                        await self._db.release(conn, timeout=RELEASE_S)
        except BaseException:
            # Cancelled (the loop is going away): no caller may wait forever, nor a
            # socket's next frame behind its sends.
            stopped = ConnectionError("the appender stopped")
            self._fail(batch, stopped)
            self._fail(self._queue, stopped)
            self._queue = []
            raise

    async def _next_message(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for a `submit`; False if none came (or closing)."""
        if self._closed:
            return False
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[bool] = loop.create_future()
        self._waiting = waiting
        timer = loop.call_later(timeout_s, self._stop_waiting)
        try:
            return await waiting
        finally:
            timer.cancel()
            if self._waiting is waiting:
                self._waiting = None

    def _stop_waiting(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.done():
            waiting.set_result(False)

    def _take(self) -> list[_Item]:
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        if self._queue:  # what is left came later than the batch, but not long ago
            self._first_at = time.monotonic()
        return batch

    def _failed(self, batch: list[_Item], exc: Exception) -> None:
        """A batch could not be committed. Shutting down, the rest is not tried either."""
        self._fail(batch, exc)
        if self._closed:
            self._fail(self._queue, exc)
            self._queue = []

    @staticmethod
    def _fail(batch: list[_Item], exc: Exception) -> None:
        """The futures carry the error to each caller."""
        for item in batch:
            if not item.done.done():
                item.done.set_exception(exc)

    async def _commit(self, conn: PoolConnection, batch: list[_Item]) -> None:
        self.batches += 1
        METRICS.commit_batch.observe(len(batch))
        try:
            results = await append_many(conn, batch)
        except STORAGE_DOWN:
            raise
        except asyncpg.PostgresError:
            if len(batch) == 1:
                raise
            await self._one_by_one(conn, batch)
            return
        stored = 0
        for item, result in zip(batch, results, strict=True):
            stored += result[0] is Appended.STORED
            if not item.done.done():
                item.done.set_result(result)
        # Once per batch, not per message (a prometheus-client increment takes a lock).
        METRICS.messages_stored.inc(stored)

    async def _one_by_one(self, conn: PoolConnection, batch: list[_Item]) -> None:
        """The batch failed for one bad element (a value PostgreSQL refuses): store the
        others one by one, and give the bad one its error."""
        for item in batch:
            try:
                result = await append(
                    conn,
                    conversation_id=item.conversation_id,
                    sender_id=item.sender_id,
                    sender_role=item.sender_role,
                    sender_name=item.sender_name,
                    client_msg_id=item.client_msg_id,
                    body=item.body,
                )
            except STORAGE_DOWN:
                raise  # this and the rest fail alike; the connection is handed back
            except Exception as exc:
                if not item.done.done():  # its caller may have gone meanwhile
                    item.done.set_exception(exc)
            else:
                if result[0] is Appended.STORED:
                    METRICS.messages_stored.inc()
                if not item.done.done():
                    item.done.set_result(result)
