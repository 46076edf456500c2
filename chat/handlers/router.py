"""A decoded client frame → its handler, after the role check; the one entry point the
gateway calls for every frame after `hello`."""

from __future__ import annotations

import asyncio

from chat.gateway.session import Session

# Imported for their `@handles` registrations.
from chat.handlers import (  # noqa: F401
    access,
    boundaries,
    conversation,
    notes,
    queue,
    safety,
    specialist,
    supervisor,
    transfer,
)
from chat.handlers.registry import HANDLERS, ROLES, error, failure
from chat.metrics import METRICS
from chat.services import Services
from protocol import frames as f
from protocol.codec import FrameError, decode_client
from protocol.codes import ErrorCode


async def handle(services: Services, session: Session, text: str) -> None:
    if session.refused:  # its token expired or was revoked, or it was erased: it is closing
        return
    frame = decode_client(text)
    if isinstance(frame, FrameError):
        session.push_frame(error(frame.code, frame.message, frame.ref))
        return
    await handle_frame(services, session, frame)


async def handle_frame(services: Services, session: Session, frame: f.ClientFrame) -> None:
    if session.refused:
        return
    kind = type(frame)
    METRICS.frames_in.labels(kind.__struct_config__.tag).inc()
    handler = HANDLERS.get(kind)
    if handler is None:  # a second `hello`
        session.push_frame(error(ErrorCode.INVALID_STATE, "already said hello", frame.ref))
        return
    if session.role not in ROLES[kind]:
        session.push_frame(
            error(
                ErrorCode.FORBIDDEN,
                f"a {session.role} may not send `{kind.__struct_config__.tag}`",
                frame.ref,
            )
        )
        return
    if session.sending and kind is not f.Send:
        # Whatever this frame does comes after the socket's earlier sends (see chat/delivery/send.py).
        await asyncio.wait(set(session.sending))
    try:
        await handler(services, session, frame)
    except Exception as exc:
        session.push_frame(failure(kind, exc, frame.ref))
