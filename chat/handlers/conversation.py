"""Inside a conversation: send, typing, read, history, end, feedback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from chat import views
from chat.delivery import send
from chat.delivery.ended import end_conversation
from chat.gateway.session import Session
from chat.handlers import safety
from chat.handlers.registry import Refuse, handles
from chat.people import Participants, Person
from chat.privacy import access
from chat.services import Services, remember_pair
from chat.store import audit, conversations, members
from matching.lifecycle import ConversationState
from protocol import frames as f
from protocol.codes import ErrorCode


async def participant(services: Services, session: Session, conversation_id: str) -> Participants:
    """(member, specialist) if this person (role and sub) is in the conversation, else
    `forbidden`: a member whose `sub` is the specialist's id is someone else."""
    pair = services.participants.get(conversation_id)
    if pair is None:
        conv = await conversations.get(services.db, conversation_id)
        if conv is None:
            raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
        pair = conv.participants
        remember_pair(services.participants, conversation_id, pair)
    if session.person not in pair:
        raise Refuse(ErrorCode.FORBIDDEN, "not your conversation")
    return pair


@handles(f.Send, "member", "specialist", "supervisor")
async def on_send(services: Services, session: Session, frame: f.Send) -> None:
    if len(frame.body) > services.settings.max_body_chars:
        raise Refuse(ErrorCode.TOO_LARGE, f"a message may hold {services.settings.max_body_chars} characters")
    if not frame.body.strip():
        raise Refuse(ErrorCode.BAD_FRAME, "an empty message")
    if session.role == "supervisor":
        # Only one who joined (PRODUCT.md §8); stored outside the group commit.
        await safety.supervisor_send(services, session, frame)
        return
    pair = await participant(services, session, frame.conversation_id)
    if len(session.sending) >= send.SENDS_IN_FLIGHT:
        await asyncio.wait(set(session.sending), return_when=asyncio.FIRST_COMPLETED)
    send.submit(services, session, frame, pair)


@handles(f.Typing, "member", "specialist")
async def on_typing(services: Services, session: Session, frame: f.Typing) -> None:
    pair = await participant(services, session, frame.conversation_id)
    # Only in a conversation this socket knows is active: the participants cache of this
    # process may outlive an end or an erasure it was not told of (no socket of theirs was
    # here), while the socket itself was told (welcome, conversation_started/_ended).
    if frame.conversation_id not in session.seen or frame.conversation_id in session.ended:
        raise Refuse(ErrorCode.INVALID_STATE, "not an active conversation of this connection")
    peer = pair[1] if session.person == pair[0] else pair[0]
    # With its conversation, so a socket whose specialist handed it on drops it (ordering.py).
    typing = f.PeerTyping(conversation_id=frame.conversation_id, role=session.role)
    services.hub.to_user(peer, typing, conversation_id=frame.conversation_id)


@handles(f.Read, "member", "specialist")
async def on_read(services: Services, session: Session, frame: f.Read) -> None:
    await participant(services, session, frame.conversation_id)
    # Stored first (never backwards, never past the last message), so a reload still shows it;
    # the participation and the peer as PostgreSQL has them, not as the cache remembers.
    stored = await members.mark_read(
        services.db, frame.conversation_id, session.role, session.user_id, frame.seq
    )
    if stored is None:
        raise Refuse(ErrorCode.FORBIDDEN, "not your conversation")
    seq, peer_sub = stored
    peer = Person("specialist" if session.role == "member" else "member", peer_sub)
    services.hub.to_user(peer, f.PeerRead(conversation_id=frame.conversation_id, seq=seq, role=session.role))


@handles(f.HistoryQuery, "member", "specialist")
async def on_history(services: Services, session: Session, frame: f.HistoryQuery) -> None:
    await participant(services, session, frame.conversation_id)
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is None or not conv.has(session.person):
        raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
    now, windows = datetime.now(UTC), access.windows_of(services.settings)
    if not access.may_read_conversation(session.role, conv, now, windows):
        raise Refuse(ErrorCode.FORBIDDEN, "this conversation ended too long ago for you to read it")
    stored = await conversations.messages_after(
        services.db, frame.conversation_id, frame.after_seq, frame.limit
    )
    peer_role = "specialist" if session.role == "member" else "member"
    read = await members.read_positions(services.db, [frame.conversation_id], peer_role)
    session.push_frame(
        f.History(
            conversation_id=frame.conversation_id,
            messages=[views.message(m) for m in stored],
            peer_read_seq=read.get(frame.conversation_id, 0),
            ref=frame.ref,
        )
    )


@handles(f.End, "member", "specialist", "supervisor")
async def on_end(services: Services, session: Session, frame: f.End) -> None:
    if session.role != "supervisor":
        await participant(services, session, frame.conversation_id)
    ended = await end_conversation(
        services, frame.conversation_id, by=session.role, reason="ended", asked=session, ref=frame.ref
    )
    if ended is None:
        existing = await conversations.get(services.db, frame.conversation_id)
        if existing is None:
            raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
        raise Refuse(ErrorCode.INVALID_STATE, "this conversation has already ended")
    if session.role == "supervisor":
        await audit.record(
            services.db,
            actor_id=session.user_id,
            actor_role=session.role,
            actor_name=session.name,
            action="end",
            conversation_id=frame.conversation_id,
            reason="ended by a supervisor",
        )


@handles(f.Feedback, "member")
async def on_feedback(services: Services, session: Session, frame: f.Feedback) -> None:
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is None or conv.member_id != session.user_id:
        raise Refuse(ErrorCode.NOT_FOUND, "no conversation of yours with that id")
    if conv.state != ConversationState.ENDED:
        raise Refuse(ErrorCode.INVALID_STATE, "feedback comes after the conversation ends")
    await conversations.save_feedback(services.db, conv.id, session.user_id, frame.rating, frame.comment)
    session.push_frame(f.FeedbackSaved(conversation_id=conv.id, ref=frame.ref))
