"""This process's mirror of the revocations in PostgreSQL (PRODUCT.md §4).

`POST /api/revocations` adds a row (chat/store/revocations.py), applies it here, and rings
the doorbell `pc:revocations` with the row's id only: nobody reading Redis learns whose
access ended. Every process, on the ring, re-reads every row young enough to matter and
applies each one it has not applied yet: the identity's tokens issued at or before that
moment are refused from now on, and its sockets here are closed (the `on_revoked` callback).

Not "the rows after the last id seen": a bigserial id is taken at insert but the row only
becomes visible at commit, so a lower id can commit after a higher one was read, and a
reader that only looks above the highest id would miss it for good. Re-reading the whole
window (the same query at start, at every ring and every poll) and remembering which ids
were applied makes the order of commits irrelevant; applying a row is an idempotent max.

The hot path (every `hello`, every HTTP request) asks `refuses(identity)`: a dict lookup,
no query. The mirror holds every revocation young enough to matter (a token lives at
most PEERCHAT_MAX_TOKEN_TTL_S, so an older revocation can only refuse tokens that are
expired anyway), loaded at start. A lost ring (Redis down, a publisher that died between
commit and publish) is made good by a poll of the same query every POLL_S, so the mirror
is never more than POLL_S behind PostgreSQL while PostgreSQL answers; a ring only makes it
faster. A socket admitted in the instant before a ring is applied is still closed by it:
the gateway registers the socket before its last `refuses` check (chat/admission.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from chat import ticks
from chat.bus import Bus
from chat.config import Settings
from chat.redis_keys import identity_key
from chat.store import revocations as store
from chat.tokens import Identity

log = logging.getLogger("peerchat.revocations")

CHANNEL = "pc:revocations"
POLL_S = 1.0
ERASED = "erased:"  # `sub` of a revocation whose person was erased: this, then their HMAC
# Revoked identity → the latest moment its tokens stopped counting (epoch seconds).
OnRevoked = Callable[[str, str, float], None]


def erased_sub(settings: Settings, role: str, sub: str) -> str:
    """What an erasure writes over `sub` in the person's revocations: no account id, but
    still the same person to every process (the keyed HMAC of chat/redis_keys.py), so
    their tokens issued before the revocation stay refused."""
    return ERASED + identity_key(settings, role, sub)


class Revocations:
    def __init__(self, db: asyncpg.Pool[asyncpg.Record], bus: Bus, settings: Settings) -> None:
        self._db = db
        self._bus = bus
        self._settings = settings
        self._latest: dict[tuple[str, str], float] = {}
        self._applied: dict[int, float] = {}  # row id → its revoked_at (epoch seconds)
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._rung: asyncio.Task[None] | None = None
        self._rang_again = False
        self.on_revoked: OnRevoked = lambda role, sub, at: None

    async def start(self) -> None:
        """Load the revocations that still matter; then follow PostgreSQL. Call before
        serving."""
        await self._bus.subscribe(CHANNEL)
        for row in await store.since(self._db, self._horizon()):
            self._remember(row)
            self._applied[row.id] = row.revoked_at.timestamp()
        self._poller = asyncio.create_task(self._poll(), name="revocations-poll")

    async def stop(self) -> None:
        for task in (self._poller, self._rung):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def refuses(self, identity: Identity) -> bool:
        """Whether a revocation covers this token (issued at or before it). A row of an
        erased member names them by `erased_sub` (chat/store/privacy.py), not their sub."""
        role = identity.role
        at = self._latest.get((role, identity.user_id))
        if at is None and self._latest:
            at = self._latest.get((role, erased_sub(self._settings, role, identity.user_id)))
        return at is not None and identity.issued_at <= at

    def forget_keyed(self, role: str, keyed: str) -> None:
        """An erasure (chat/privacy/forgetting.py): a revocation remembered under the
        person's account id is kept under `erased_sub` instead, as PostgreSQL now has it,
        so their old tokens stay refused and no account id of theirs stays here."""
        for key in [k for k in self._latest if k[0] == role and not k[1].startswith(ERASED)]:
            if identity_key(self._settings, role, key[1]) == keyed:
                at = self._latest.pop(key)
                erased = (role, ERASED + keyed)
                self._latest[erased] = max(at, self._latest.get(erased, at))

    async def revoke(self, row: store.Revocation) -> None:
        """A revocation was just committed: apply it here, then ring every other process.
        Neither step can undo the commit; a failure of either is made good by the poll."""
        await self._catch_up_quietly()
        await self._bus.publish(CHANNEL, str(row.id).encode())

    def on_bus(self, data: bytes) -> None:
        """A ring: some process added a revocation. Read it (and anything else new)."""
        self._rang_again = True  # a read already under way may have missed the new row
        if self._rung is None or self._rung.done():
            self._rung = asyncio.get_running_loop().create_task(self._answer_rings())

    async def _answer_rings(self) -> None:
        while self._rang_again:
            self._rang_again = False
            await self._catch_up_quietly()

    async def catch_up(self) -> None:
        """Apply every row of the window not applied yet, whatever order they committed in."""
        async with self._lock:
            for row in await store.since(self._db, self._horizon()):
                if row.id in self._applied:
                    continue
                at = self._remember(row)
                self._applied[row.id] = row.revoked_at.timestamp()
                self.on_revoked(row.role, row.sub, at)

    def _horizon(self) -> datetime:
        """Revocations older than this can only refuse tokens that have expired anyway."""
        return datetime.now(UTC) - timedelta(seconds=self._settings.max_token_ttl_s + 60)

    def _remember(self, row: store.Revocation) -> float:
        at = row.revoked_at.timestamp()
        key = (row.role, row.sub)
        self._latest[key] = max(at, self._latest.get(key, at))
        return self._latest[key]

    async def _catch_up_quietly(self) -> None:
        try:
            await self.catch_up()
        except Exception as exc:  # the poll retries
            log.warning("revocations not read (%s); retrying", type(exc).__name__)

    async def _poll(self) -> None:
        while True:
            await ticks.sleep(POLL_S)
            await self._catch_up_quietly()
            self._forget_old()

    def _forget_old(self) -> None:
        horizon = datetime.now(UTC).timestamp() - self._settings.max_token_ttl_s - 60
        for key in [k for k, at in self._latest.items() if at < horizon]:
            del self._latest[key]
        # A minute more for the ids: one forgotten while the query still returns it would
        # be applied again (harmless, but it would close sockets for nothing).
        for row_id in [i for i, at in self._applied.items() if at < horizon - 60]:
            del self._applied[row_id]
