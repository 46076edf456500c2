"""Ending a conversation, and telling every device of both participants."""

from __future__ import annotations

from typing import Literal

from msgspec.structs import replace

from chat.gateway.session import Outbound, Session
from chat.services import Services
from chat.store import conversations
from protocol import frames as f
from protocol.codec import encode

EndedBy = Literal["member", "specialist", "supervisor", "system"]


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
    frame = f.ConversationEnded(conversation_id=conversation_id, by=by, reason=reason)
    if asked is not None:
        asked.push(Outbound(encode(replace(frame, ref=ref)), conversation_id, None, ends_conversation=True))
    for user in (ended.member_id, ended.specialist_id):
        services.hub.to_user(user, frame, conversation_id=conversation_id, ends_conversation=True, skip=asked)
    await services.poke_matchmaker()
    return ended
