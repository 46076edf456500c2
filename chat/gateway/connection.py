"""One socket after its `hello` was accepted: attach, welcome, read frames until either side
closes, then detach and depart. `Connection.serve` owns that whole life; its `finally`
detaches the socket whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import cast

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketState

from chat import views
from chat.delivery import peers, send
from chat.gateway import welcome
from chat.gateway.flood import FloodGuard
from chat.gateway.session import Session
from chat.gateway.wsproto import EXTENSION, DirectWebSocketProtocol
from chat.handlers import router, safety
from chat.handlers.registry import error
from chat.metrics import METRICS
from chat.services import Services
from chat.store import conversations
from chat.tokens import Identity
from protocol.codec import FrameError, decode_client, encode, encode_text
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import Hello, Send

log = logging.getLogger("peerchat.gateway")
DEPART_WHILE_DRAINING_S = 2.0  # presence and peers told, at shutdown (see `_depart`)


class Connection:
    def __init__(self, ws: WebSocket, services: Services, identity: Identity) -> None:
        user_id, role, name = identity.user_id, identity.role, identity.name
        self.identity = identity
        self.ws = ws
        self.services = services
        self.settings = services.settings
        self.user_id, self.role = user_id, role
        self.closing = False  # either side began closing the socket
        # uvicorn with chat/gateway/wsproto.py offers direct sends and reads; other servers
        # (the TestClient) get the plain ASGI path.
        self.direct: DirectWebSocketProtocol | None = ws.scope.get("extensions", {}).get(EXTENSION)
        if self.direct is not None:
            self.direct.forget_handshake()  # accepted: its headers are in the scope
        self.receive: Callable[[], Awaitable[Message]] = (
            ws.receive if self.direct is None else cast(Callable[[], Awaitable[Message]], self.direct.receive)
        )
        self.guard = FloodGuard(self.settings.rate_limit_per_10s)
        self.reader_idle = False
        self.session = Session(
            user_id=user_id,
            role=role,
            name=name,
            send_text=self._send_text,
            close_socket=self._close_socket,
            backfill=self._backfill,
            max_queue=self.settings.outbound_queue_frames,
            send_now=self.direct.send_now if self.direct is not None else None,
            abort_socket=self._abort_socket,
        )

    async def _send_text(self, data: bytes) -> None:
        await self.ws.send_text(data.decode())

    async def _close_socket(self, code: int, reason: str) -> None:
        self.closing = True
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code, reason)

    def _abort_socket(self) -> None:
        """A refused socket whose close frame could not be written in time: cut it. The
        read loop then sees the disconnect and the socket is detached as usual."""
        self.closing = True
        if self.direct is not None and not self.direct.transport.is_closing():
            log.info("socket %s did not take its close in time; cut", self.session.id[:8])
            self.direct.transport.abort()

    async def _backfill(self, conversation_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        # A specialist catches up only a conversation they hold: one handed on while this
        # socket missed its `conversation_ended` (the repair's catch-up, a bus reconnect's)
        # must not bring them what the member says to the next specialist (PRODUCT.md §9).
        held_by = self.user_id if self.role == "specialist" else None
        stored = await conversations.messages_after(
            self.services.db, conversation_id, after, limit, held_by=held_by
        )
        return [(m.seq, encode(views.message(m))) for m in stored]

    def _admit(self) -> bool:
        return self.guard.admits(time.monotonic())

    def _on_text(self, text: str) -> bool:
        """A text frame that arrived while the reader waits with nothing queued. A `send`
        that needs nothing awaited is handled here and now, without waking the reader's
        task (send.send_now); anything else goes to the reader. Order holds: the reader is
        idle, so every earlier frame has been handled."""
        try:
            if (
                not self.reader_idle
                or self.closing
                or self.session.refused  # the reader drops it (chat/handlers/router.py)
                or len(text) > self.settings.max_frame_bytes
            ):
                return False
            if '"send"' not in text:  # not a send (or an oddly escaped one): the reader
                return False  # decodes it, once
            frame = decode_client(text)
            if type(frame) is not Send:
                return False
            return send.send_now(self.services, self.session, frame, self._admit)
        except Exception:  # nothing may escape into the protocol's data_received
            log.exception("direct send failed; the reader takes the frame")
            return False

    async def serve(self, hello: Hello) -> None:
        services, session = self.services, self.session
        # The socket cap, and the deadline at the token's `exp` (chat/admission.py).
        try:
            refusal = await services.admission.admit(session, self.identity)
        except BaseException:
            await services.admission.release(session)
            raise
        if refusal is not None:
            await services.admission.release(session)
            if refusal.error is not None:
                await self.ws.send_text(encode_text(refusal.error))
            await self.ws.close(refusal.code, refusal.reason)
            return
        await services.hub.attach(session)
        try:
            await welcome.greet(services, session, hello)
            session.start()
            await services.presence.connect(self.user_id, self.role, session.id, time.time())
            if self.role == "specialist":
                await services.poke_matchmaker()
            await peers.peer_connected(services, session)
            if self.direct is not None:
                self.direct.on_text = self._on_text
            await self._read()
        finally:
            if self.direct is not None:
                self.direct.on_text = None
            await services.hub.detach(session)
            with contextlib.suppress(Exception):
                await safety.watcher_gone(services, session)
            await session.stop()
            with contextlib.suppress(Exception):
                await services.admission.release(session)
            # While the process drains, bounded: uvicorn waits for every handler before it
            # exits, and a hung Redis or PostgreSQL would hold each one for their full
            # timeouts. Cut short, presence heals by itself (the lease is not renewed).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._depart(), DEPART_WHILE_DRAINING_S if services.draining else None)

    async def _read(self) -> None:
        """Frames until either side closes."""
        settings, session = self.settings, self.session
        while not self.closing:
            self.reader_idle = True
            message = await self.receive()
            self.reader_idle = False
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                if len(raw) > settings.max_frame_bytes:
                    await self._close_socket(CloseCode.FRAME_TOO_BIG, "frame too big")
                    break
                session.push_frame(FrameError(ErrorCode.BAD_FRAME, "frames must be text").as_frame())
                continue
            if len(text) > settings.max_frame_bytes:
                await self._close_socket(CloseCode.FRAME_TOO_BIG, "frame too big")
                break
            verdict = self.guard.check(time.monotonic())
            if verdict == "close":
                METRICS.floods.inc()
                await self._close_socket(CloseCode.FLOOD, "flood")
                break
            if verdict == "limit":
                session.push_frame(error(ErrorCode.RATE_LIMITED, "slow down", _ref_of(text)))
                continue
            await router.handle(self.services, session, text)

    async def _depart(self) -> None:
        services, session = self.services, self.session
        gone = await services.presence.disconnect(self.user_id, self.role, session.id, time.time())
        if gone:
            await peers.peer_disconnected(services, session)
            if self.role == "specialist":
                await services.poke_matchmaker()


def _ref_of(text: str) -> str | None:
    frame = decode_client(text)
    if isinstance(frame, FrameError):
        return frame.ref
    return frame.ref
