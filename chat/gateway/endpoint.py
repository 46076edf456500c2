"""The `/ws` endpoint: handshake, then one reader loop per socket (PRODUCT.md §5).

The life of a socket: origin check → accept → `hello` within 10 s (else 4002) → token
(else 4001, with no frame before it) → attach to the hub (before reading state, so nothing
falls in between) → `welcome` → resume catch-up → frames until either side closes
(chat/gateway/connection.py, whose `finally` detaches the socket whatever happened). Bad
frames get `error` replies; nothing a client sends can raise out of here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect

from chat.gateway.connection import Connection
from chat.metrics import METRICS
from chat.services import Services
from chat.tokens import TokenRejected, verify
from protocol.codec import FrameError, decode_client
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import Hello

log = logging.getLogger("peerchat.gateway")


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
        connection = Connection(ws, services, identity)
        await connection.serve(frame)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("socket failed")
        with contextlib.suppress(Exception):
            await ws.close(CloseCode.INTERNAL_ERROR)
    finally:
        METRICS.sockets_closed.inc()
