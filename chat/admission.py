"""Who may hold a socket, and for how long (PRODUCT.md §4).

The gateway asks here at three moments of a socket's life:

- `admit()` after the token verified: a revoked token is refused (4001); one socket more
  than PEERCHAT_MAX_SOCKETS_PER_USER for the identity is refused (`too_many_connections`,
  then 4029); otherwise the socket holds a slot and a deadline, its token's `exp`.
- `reauth()` when the client sends `reauth {"token"}`: a valid, unrevoked token of the same
  (role, sub) moves the deadline (→ `reauthed {"exp"}`); anything else closes with 4001.
- `release()` when the socket ends, whatever ended it.

At the deadline (`exp` itself counts as expired) the socket is closed with 4001. A
revocation applied by chat/revocations.py closes, with 4001, every socket here of that
identity whose current token was issued at or before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from chat import ticks
from chat.config import Settings
from chat.gateway.session import Session
from chat.metrics import METRICS
from chat.revocations import Revocations
from chat.socket_cap import SocketCap
from chat.store.db import iso
from chat.tokens import Identity, TokenRejected, verify
from protocol import frames as f
from protocol.codes import CloseCode, ErrorCode

log = logging.getLogger("peerchat.admission")

RENEW_EVERY = 3  # lease renewals per lease


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a socket may not go on: close with `code`, after `error` if there is one."""

    code: CloseCode
    reason: str
    error: f.Error | None = None


@dataclass(slots=True)
class _Held:
    session: Session
    role: str
    sub: str
    issued_at: float
    expires_at: float
    deadline: asyncio.TimerHandle | None = None


class Admission:
    def __init__(self, settings: Settings, revocations: Revocations, cap: SocketCap) -> None:
        self._settings = settings
        self.revocations = revocations
        self._cap = cap
        self._held: dict[str, _Held] = {}  # by socket (session) id
        self._by_identity: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self._renewer: asyncio.Task[None] | None = None
        revocations.on_revoked = self._revoked

    async def start(self) -> None:
        await self.revocations.start()
        self._renewer = asyncio.create_task(self._renew_leases(), name="socket-leases")

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await self.revocations.stop()

    def refuses(self, identity: Identity) -> bool:
        """A revoked token: HTTP 401, socket 4001."""
        return self.revocations.refuses(identity)

    async def admit(self, session: Session, identity: Identity) -> Refusal | None:
        """Take a slot and set the deadline; None if the socket may go on. A refusal is for
        the caller to send (before `session` starts); it calls `release` either way."""
        if self.refuses(identity):
            METRICS.tokens_refused.inc()
            return Refusal(CloseCode.BAD_TOKEN, "token revoked")
        if not await self._cap.take(identity.role, identity.user_id, session.id):
            METRICS.over_socket_cap.inc()
            limit = self._settings.max_sockets_per_user
            error = f.Error(
                code=ErrorCode.TOO_MANY_CONNECTIONS,
                message=f"at most {limit} connections at once; close one, then reconnect",
            )
            return Refusal(CloseCode.FLOOD, "too many connections", error)
        held = _Held(session, identity.role, identity.user_id, identity.issued_at, identity.expires_at)
        self._held[session.id] = held
        self._by_identity[(held.role, held.sub)].add(session.id)
        # Checked again now that the socket is registered: a revocation applied while the
        # slot was being taken found nothing here to close, so it is caught now instead.
        if self.refuses(identity):
            return Refusal(CloseCode.BAD_TOKEN, "token revoked")
        self._schedule(held)
        return None

    def reauth(self, session: Session, frame: f.Reauth) -> None:
        """Answer `reauthed`, or close the socket with 4001."""
        held = self._held.get(session.id)
        if held is None:
            return  # refused or closing already
        try:
            identity = verify(frame.token, self._settings)
        except TokenRejected as exc:
            log.info("refused reauth token: %s", exc)  # the reason only, never the token
            METRICS.tokens_refused.inc()
            self._expel(held, "token refused", "reauth_refused")
            return
        if (identity.role, identity.user_id) != (held.role, held.sub):
            log.info("refused reauth token: another identity")
            self._expel(held, "token of another identity", "reauth_refused")
            return
        if self.refuses(identity):
            self._expel(held, "token revoked", "reauth_refused")
            return
        held.issued_at, held.expires_at = identity.issued_at, identity.expires_at
        self._schedule(held)
        exp = iso(datetime.fromtimestamp(identity.expires_at, UTC))
        session.push_frame(f.Reauthed(exp=exp, ref=frame.ref))

    async def forget(self, role: str, sub: str) -> None:
        """The identity's socket count in Redis goes (an erasure)."""
        await self._cap.forget(role, sub)

    def forget_keyed(self, role: str, keyed: str) -> None:
        """What this process keeps under an erased person's account id goes (an erasure on
        any process, chat/privacy/forgetting.py): the socket cap's cached key, and a
        revocation of theirs is kept by their keyed name alone."""
        self._cap.forget_keyed(keyed)
        self.revocations.forget_keyed(role, keyed)

    async def release(self, session: Session) -> None:
        held = self._held.pop(session.id, None)
        if held is None:
            return
        if held.deadline is not None:
            held.deadline.cancel()
        mine = self._by_identity.get((held.role, held.sub))
        if mine is not None:
            mine.discard(session.id)
            if not mine:
                del self._by_identity[(held.role, held.sub)]
        await self._cap.give_back(held.role, held.sub, session.id)

    def _schedule(self, held: _Held) -> None:
        if held.deadline is not None:
            held.deadline.cancel()
        loop = asyncio.get_running_loop()
        held.deadline = loop.call_later(max(0.0, held.expires_at - time.time()), self._expire, held)

    def _expire(self, held: _Held) -> None:
        if self._held.get(held.session.id) is not held:
            return
        if held.expires_at > time.time():  # woken early (timers run on the monotonic clock)
            self._schedule(held)
            return
        self._expel(held, "token expired", "expired")

    def _expel(self, held: _Held, reason: str, why: str) -> None:
        METRICS.token_ends.labels(why).inc()
        if held.deadline is not None:
            held.deadline.cancel()
            held.deadline = None
        held.session.refuse(CloseCode.BAD_TOKEN, reason)

    def _revoked(self, role: str, sub: str, at: float) -> None:
        for socket_id in list(self._by_identity.get((role, sub), ())):
            held = self._held.get(socket_id)
            if held is not None and held.issued_at <= at:
                self._expel(held, "token revoked", "revoked")

    async def _renew_leases(self) -> None:
        while True:
            await ticks.sleep(self._settings.presence_ttl_s / RENEW_EVERY)
            # Timers run on the monotonic clock; `exp` is wall-clock time. Should the wall
            # clock jump ahead, a timer would fire late: this sweep bounds how late.
            now = time.time()
            for held in [h for h in self._held.values() if h.expires_at <= now and h.deadline is not None]:
                self._expel(held, "token expired", "expired")
            try:
                await self._cap.renew()
            except Exception as exc:
                log.warning("socket leases not renewed: %s", type(exc).__name__)
