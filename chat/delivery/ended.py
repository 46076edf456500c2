"""Ending a conversation, and telling every device of both participants; the one builder of
`conversation_ended`."""

from __future__ import annotations

from typing import Literal, cast

from msgspec.structs import replace

from chat import handoff_end
from chat.gateway.session import Outbound, Session
from chat.people import specialist
from chat.safety.monitoring import CHANNEL as MONITORS_CHANNEL
from chat.services import Services
from chat.store import conversations, monitors, wrap_up
from chat.store.db import iso
from protocol import frames as f
from protocol.codec import encode

EndedBy = Literal["member", "specialist", "supervisor", "system"]


def ended_frame(conversation_id: str, by: EndedBy, reason: str) -> f.ConversationEnded:
    return f.ConversationEnded(conversation_id=conversation_id, by=by, reason=reason)


def ended_outbound(c: conversations.Conversation) -> Outbound:
    """A stored conversation's end, for a socket that missed it (a resume, a repair)."""
    by = cast(EndedBy, c.ended_by or "system")
    frame = ended_frame(c.id, by, c.end_reason or "ended")
    return Outbound(encode(frame), c.id, None, ends_conversation=True)


async def end_conversation(
    services: Services,
    conversation_id: str,
    *,
    by: EndedBy,
    reason: str,
    asked: Session | None = None,
    ref: str | None = None,
) -> conversations.Conversation | None:
    """End it and tell every device of both participants. `asked`, the socket whose `end`
    this answers, gets its copy with the `ref` (a supervisor's, too)."""
    ended = await conversations.end(services.db, conversation_id, by=by, reason=reason)
    if ended is None:
        return None
    frame = ended_frame(conversation_id, by, reason)
    if asked is not None:
        asked.push(Outbound(encode(replace(frame, ref=ref)), conversation_id, None, ends_conversation=True))
    for person in ended.participants:
        services.hub.to_user(
            person, frame, conversation_id=conversation_id, ends_conversation=True, skip=asked
        )
    await after_end(services, ended, frame)
    return ended


async def after_end(services: Services, conv: conversations.Conversation, frame: f.ConversationEnded) -> None:
    """What follows every end, whoever ended it (a participant, a supervisor, an erasure, a
    grace sweep): the specialist's devices learn their wrap-up, every supervisor monitoring
    it gets the end and the watch closes (PRODUCT.md §8), and the matchmaker looks again.
    Its cached pair is dropped: nothing more is sent in it, and a late read of it (history,
    a refused send) reads PostgreSQL once."""
    services.participants.pop(conv.id, None)
    # Their wrap-up has begun (chat/store/wrap_up.py): the specialist's devices learn until when.
    wrapping = await wrap_up.until(services.db, conv.specialist_id)
    if wrapping is not None:
        status = await services.db.fetchval(
            "SELECT status FROM specialists WHERE id = $1", conv.specialist_id
        )
        services.hub.to_user(
            specialist(conv.specialist_id),
            f.AvailabilityChanged(
                status="available" if status == "available" else "away", wrap_up_until=iso(wrapping)
            ),
        )
    # A transfer it cancelled was on offer to someone (PRODUCT.md §9): withdrawn.
    await handoff_end.withdraw_with_end(services, conv.id)
    watchers = services.monitors.watchers(conv.id)
    for watcher in watchers:
        services.hub.to_user(watcher, frame, conversation_id=conv.id, ends_conversation=True)
    if watchers:
        # The end ends every watch of it (PRODUCT.md §8).
        await monitors.stop_conversation(services.db, conv.id)
        await services.monitors.reload(services.db)
        await services.bus.publish(MONITORS_CHANNEL, b"")
    await services.poke_matchmaker()
