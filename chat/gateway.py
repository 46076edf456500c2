"""The `/ws` endpoint: handshake, then one reader loop per socket (PRODUCT.md §5).

The life of a socket: origin check → accept → `hello` within 10 s (else 4002) → token
(else 4001, with no frame before it) → attach to the hub (before reading state, so nothing
falls in between) → `welcome` → resume catch-up → frames until either side closes. The
`finally` detaches the socket whatever happened. Bad frames get `error` replies; nothing a
client sends can raise out of here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import urlsplit

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chat import dispatch, welcome
from chat.metrics import METRICS
from chat.services import Services
from chat.session import Session
from chat.tokens import Identity, TokenRejected, verify
from chat.wsproto import EXTENSION, DirectWebSocketProtocol
from protocol.codec import FrameError, decode_client, encode_text
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import Hello, Send

log = logging.getLogger("peerchat.gateway")
DEPART_WHILE_DRAINING_S = 2.0  # presence and peers told, at shutdown (see the `finally` below)


def origin_allowed(ws: WebSocket, allowed: frozenset[str]) -> bool:
    """Browsers always send Origin; other clients may not, and cannot be forged into it."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if allowed:
        return origin in allowed
    # No list configured: same origin only.
    return urlsplit(origin).netloc == ws.headers.get("host", "")


class FloodGuard:
    """Frames per rolling 10 s: over the limit → `rate_limited`; over twice it → close 4029."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: deque[float] = deque()

    def _recent(self, now: float) -> deque[float]:
        times = self._times
        while times and times[0] <= now - 10:
            times.popleft()
        return times

    def admits(self, now: float) -> bool:
        """Whether `check` would say "ok"; the frame is counted only if so."""
        times = self._recent(now)
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def check(self, now: float) -> str:
        times = self._recent(now)
        times.append(now)
        if len(times) > 2 * self.limit:
            return "close"
        return "limit" if len(times) > self.limit else "ok"


async def websocket_endpoint(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    settings = services.settings
    if not origin_allowed(ws, settings.allowed_origins) or services.draining:
        await ws.close(code=CloseCode.FORBIDDEN if not services.draining else CloseCode.SERVER_RESTARTING)
        return
    await ws.accept()
    METRICS.sockets_opened.inc()
    identity = None
    try:
        try:
            first = await asyncio.wait_for(ws.receive(), settings.hello_timeout_s)
        except TimeoutError:
            await ws.close(CloseCode.NO_HELLO)
            return
        if first["type"] == "websocket.disconnect":
            return
        text = first.get("text")
        if text is None or len(text) > settings.max_frame_bytes:
            await ws.close(CloseCode.NO_HELLO if text is None else CloseCode.FRAME_TOO_BIG)
            return
        frame = decode_client(text)
        if isinstance(frame, FrameError):
            # A `hello` whose token is missing or malformed is a bad token, not a missing hello.
            is_hello = '"hello"' in text and frame.code is ErrorCode.BAD_FRAME and "`hello`" in frame.message
            await ws.close(CloseCode.BAD_TOKEN if is_hello else CloseCode.NO_HELLO)
            return
        if not isinstance(frame, Hello):
            await ws.close(CloseCode.NO_HELLO)
            return
        try:
            identity = verify(frame.token, settings)
        except TokenRejected as exc:
            log.info("refused token: %s", exc)  # the reason only, never the token
            METRICS.tokens_refused.inc()
            await ws.close(CloseCode.BAD_TOKEN)
            return
        if services.admission.refuses(identity):
            log.info("refused token: revoked")
            METRICS.tokens_refused.inc()
            await ws.close(CloseCode.BAD_TOKEN)
            return
        await _serve(ws, services, identity, frame)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("socket failed")
        with contextlib.suppress(Exception):
            await ws.close(CloseCode.INTERNAL_ERROR)
    finally:
        METRICS.sockets_closed.inc()


async def _serve(ws: WebSocket, services: Services, identity: Identity, hello: Hello) -> None:
    settings = services.settings
    user_id, role, name = identity.user_id, identity.role, identity.name
    closing = asyncio.Event()
    # uvicorn with chat/wsproto.py offers direct sends and reads; other servers (the
    # TestClient) get the plain ASGI path.
    direct: DirectWebSocketProtocol | None = ws.scope.get("extensions", {}).get(EXTENSION)
    receive: Callable[[], Awaitable[Message]] = (
        ws.receive if direct is None else cast(Callable[[], Awaitable[Message]], direct.receive)
    )

    async def send_text(data: bytes) -> None:
        await ws.send_text(data.decode())

    async def close_socket(code: int, reason: str) -> None:
        closing.set()
        if ws.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(code, reason)

    async def backfill(conversation_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        return await dispatch.backfill(services, conversation_id, after, limit)

    session = Session(
        user_id=user_id,
        role=role,
        name=name,
        send_text=send_text,
        close_socket=close_socket,
        backfill=backfill,
        max_queue=settings.outbound_queue_frames,
        send_now=direct.send_now if direct is not None else None,
    )
    try:
        refusal = await services.admission.admit(session, identity)
    except BaseException:
        await services.admission.release(session)
        raise
    if refusal is not None:
        await services.admission.release(session)
        if refusal.error is not None:
            await ws.send_text(encode_text(refusal.error))
        await ws.close(refusal.code, refusal.reason)
        return
    await services.hub.attach(session)
    try:
        await welcome.greet(services, session, hello)
        session.start()
        await services.presence.connect(user_id, role, session.id, time.time())
        if role == "specialist":
            await services.poke_matchmaker()
        await dispatch.peer_connected(services, session)
        guard = FloodGuard(settings.rate_limit_per_10s)
        reader_idle = False

        def admit() -> bool:
            return guard.admits(time.monotonic())

        def on_text(text: str) -> bool:
            """A text frame that arrived while the reader below waits with nothing queued.
            A `send` that needs nothing awaited is handled here and now, without waking
            the reader's task (dispatch.send_now); anything else goes to the reader. Order
            holds: the reader is idle, so every earlier frame has been handled."""
            try:
                if not reader_idle or closing.is_set() or len(text) > settings.max_frame_bytes:
                    return False
                if '"send"' not in text:  # not a send (or an oddly escaped one): the reader
                    return False  # decodes it, once
                frame = decode_client(text)
                if type(frame) is not Send:
                    return False
                return dispatch.send_now(services, session, frame, admit)
            except Exception:  # nothing may escape into the protocol's data_received
                log.exception("direct send failed; the reader takes the frame")
                return False

        if direct is not None:
            direct.on_text = on_text
        while not closing.is_set():
            reader_idle = True
            message = await receive()
            reader_idle = False
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                if len(raw) > settings.max_frame_bytes:
                    await close_socket(CloseCode.FRAME_TOO_BIG, "frame too big")
                    break
                session.push_frame(FrameError(ErrorCode.BAD_FRAME, "frames must be text").as_frame())
                continue
            if len(text) > settings.max_frame_bytes:
                await close_socket(CloseCode.FRAME_TOO_BIG, "frame too big")
                break
            verdict = guard.check(time.monotonic())
            if verdict == "close":
                METRICS.floods.inc()
                await close_socket(CloseCode.FLOOD, "flood")
                break
            if verdict == "limit":
                session.push_frame(dispatch.error(ErrorCode.RATE_LIMITED, "slow down", _ref_of(text)))
                continue
            await dispatch.handle(services, session, text)
    finally:
        if direct is not None:
            direct.on_text = None
        await services.hub.detach(session)
        await session.stop()
        with contextlib.suppress(Exception):
            await services.admission.release(session)

        async def depart() -> None:
            gone = await services.presence.disconnect(user_id, role, session.id, time.time())
            if gone:
                await dispatch.peer_disconnected(services, session)
                if role == "specialist":
                    await services.poke_matchmaker()

        # While the process drains, bounded: uvicorn waits for every handler before it
        # exits, and a hung Redis or PostgreSQL would hold each one for their full
        # timeouts. Cut short, presence heals by itself (the lease is not renewed).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(depart(), DEPART_WHILE_DRAINING_S if services.draining else None)


def _ref_of(text: str) -> str | None:
    frame = decode_client(text)
    if isinstance(frame, FrameError):
        return frame.ref
    return frame.ref
