"""The send pipeline: a `send` to the group commit, then, when its batch commits, the ack
to the sender and the message to every device of both participants.

A socket's sends are pipelined: each goes to the group commit and the reader goes on to
the next frame; the ack and the fan-out follow when its batch commits (`_stored`, called
in the order the sends arrived). Any other frame first waits for the socket's sends to
settle (chat/handlers/router.py), so `send` then `end` still stores the message before
the conversation ends. A socket has at most SENDS_IN_FLIGHT uncommitted; the next waits
for the oldest (chat/handlers/conversation.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from datetime import datetime

from chat import views
from chat.gateway.session import Outbound, Session
from chat.handlers.registry import Refuse, failure, may_send
from chat.metrics import METRICS
from chat.people import Participants
from chat.safety import risk_watch
from chat.services import Services
from chat.store import conversations
from chat.store.conversations import Appended
from chat.store.db import iso
from protocol import frames as f
from protocol.codec import encode
from protocol.codes import ErrorCode

log = logging.getLogger("peerchat.dispatch")

SENDS_IN_FLIGHT = 32
_FRAMES_IN_SEND = METRICS.frames_in.labels("send")
_BACKGROUND: set[asyncio.Task[None]] = set()


async def settle() -> None:
    """At shutdown, after the appender closed: let the re-sends of repeated messages finish."""
    if _BACKGROUND:
        await asyncio.wait(set(_BACKGROUND), timeout=5)


def send_now(services: Services, session: Session, frame: f.Send, admit: Callable[[], bool]) -> bool:
    """`on_send` without a task, for a `send` read while the socket's reader was idle
    (chat/gateway/connection.py): True if the message went to the group commit, False (and
    nothing done) if anything needs the reader: a refusal to explain, a conversation not in
    the cache, a full pipeline, or `admit` (the flood guard) saying no."""
    if not may_send(session.role, f.Send):
        return False
    body = frame.body
    if len(body) > services.settings.max_body_chars or not body.strip():
        return False
    pair = services.participants.get(frame.conversation_id)
    if pair is None or session.person not in pair or len(session.sending) >= SENDS_IN_FLIGHT:
        return False
    if not admit():
        return False
    _FRAMES_IN_SEND.inc()
    submit(services, session, frame, pair)
    return True


def submit(services: Services, session: Session, frame: f.Send, pair: Participants) -> None:
    """To the group commit; the ack and the fan-out follow when its batch commits."""
    done = services.appender.submit(
        conversation_id=frame.conversation_id,
        sender_id=session.user_id,
        sender_role=session.role,
        sender_name=session.name,
        client_msg_id=frame.client_msg_id,
        body=frame.body,
    )
    session.sending.add(done)
    done.add_done_callback(functools.partial(_stored, services, session, frame, pair, time.perf_counter()))


def _stored(
    services: Services,
    session: Session,
    frame: f.Send,
    pair: Participants,
    started: float,
    done: asyncio.Future[tuple[Appended, int, datetime]],
) -> None:
    """A send's batch committed (or failed): the ack, then the fan-out; or the error."""
    session.sending.discard(done)
    if done.cancelled():
        return
    try:
        outcome, seq, sent_at = done.result()
        if outcome is Appended.NOT_FOUND:
            raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
        if outcome is Appended.FORBIDDEN:
            raise Refuse(ErrorCode.FORBIDDEN, "not your conversation")
        if outcome is Appended.ENDED:
            raise Refuse(ErrorCode.INVALID_STATE, "this conversation has ended")
        METRICS.store_seconds.observe(time.perf_counter() - started)
        # Committed: now, and only now, the ack.
        ack = Outbound(
            encode(
                f.Ack(
                    conversation_id=frame.conversation_id,
                    client_msg_id=frame.client_msg_id,
                    seq=seq,
                    ref=frame.ref,
                )
            )
        )
        if outcome is Appended.DUPLICATE:
            session.push(ack)
            # The first copy's fan-out may have died with its process; receivers drop
            # repeats by seq. Rare (a client's retry), so it may take a task.
            task = asyncio.get_running_loop().create_task(_fan_out_stored(services, frame, pair, seq))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            # The socket's next non-send frame (an `end`, say) waits for this too.
            session.sending.add(task)
            task.add_done_callback(session.sending.discard)
            return
        data = encode(
            f.Message(
                conversation_id=frame.conversation_id,
                seq=seq,
                sender=f.Sender(role=session.role, name=session.name),
                body=frame.body,
                client_msg_id=frame.client_msg_id,
                sent_at=iso(sent_at),
            )
        )
        # The sending socket gets the ack and its own copy together (one write).
        session.push(ack, Outbound(data, frame.conversation_id, seq))
        for person in pair:
            services.hub.to_user(
                person,
                data,
                conversation_id=frame.conversation_id,
                seq=seq,
                skip=session if person == session.person else None,
            )
        for watcher in services.monitors.watchers(frame.conversation_id):
            services.hub.to_user(watcher, data, conversation_id=frame.conversation_id, seq=seq)
        if session.role == "member":
            # After the ack and the fan-out, in a later turn of the loop (PRODUCT.md §8).
            risk_watch.after_member_message(services, frame.conversation_id, seq, frame.body, pair[1])
    except Exception as exc:
        session.push_frame(failure(f.Send, exc, frame.ref))


async def _fan_out_stored(services: Services, frame: f.Send, pair: Participants, seq: int) -> None:
    try:
        stored = await conversations.get_message(services.db, frame.conversation_id, seq)
    except Exception as exc:
        log.warning("re-sending a repeated message failed: %s", type(exc).__name__)
        return
    if stored is None:
        return
    data = encode(views.message(stored))
    for person in pair:
        services.hub.to_user(person, data, conversation_id=frame.conversation_id, seq=seq)
