"""Staff notes (PRODUCT.md §9): `note` and `notes`, for the conversation's specialist and
for supervisors. A note goes to staff devices only: the specialist's, the supervisors
watching the conversation, and the author's; never to the member, by any path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, cast

from chat.gateway.session import Session
from chat.handlers.registry import Refuse, handles
from chat.people import specialist
from chat.privacy import access
from chat.safety import monitoring
from chat.services import Services
from chat.store import conversations, notes
from chat.store.conversations import Conversation
from chat.store.db import iso
from protocol import frames as f
from protocol.codes import ErrorCode


def view(note: notes.StaffNote) -> f.StaffNote:
    role = cast(Literal["specialist", "supervisor"], note.author_role)
    return f.StaffNote(
        id=note.id, author=f.NoteAuthor(role=role, name=note.author_name), body=note.body, at=iso(note.at)
    )


async def staff_conversation(services: Services, session: Session, conversation_id: str) -> Conversation:
    """The conversation if this person may read and write its notes: any supervisor; its
    specialist within their access window (PRODUCT.md §10). Otherwise `not_found`/`forbidden`."""
    conv = await conversations.get(services.db, conversation_id)
    if conv is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
    if session.role == "supervisor":
        return conv
    if conv.specialist_id != session.user_id:
        raise Refuse(ErrorCode.FORBIDDEN, "not your conversation")
    if not access.may_read_conversation(
        session.role, conv, datetime.now(UTC), access.windows_of(services.settings)
    ):
        raise Refuse(ErrorCode.FORBIDDEN, "this conversation ended too long ago for you to read it")
    return conv


def fan_out(services: Services, conv: Conversation, saved: f.NoteSaved, author: Session | None) -> None:
    """`note_saved` to every staff device of the conversation but the author's own socket
    (which gets the direct reply)."""
    skip_self = author if author is not None and author.role == "specialist" else None
    services.hub.to_user(specialist(conv.specialist_id), saved, skip=skip_self)
    own_watch = monitoring.watcher_of(author) if author is not None else None
    for watcher in services.monitors.watchers(conv.id):
        if watcher != own_watch:
            services.hub.to_user(watcher, saved, conversation_id=conv.id)


@handles(f.Note, "specialist", "supervisor")
async def on_note(services: Services, session: Session, frame: f.Note) -> None:
    body = frame.body.strip()
    if not body:
        raise Refuse(ErrorCode.BAD_FRAME, "an empty note")
    conv = await staff_conversation(services, session, frame.conversation_id)
    stored = await notes.add_by(services.db, conv.id, session, body)
    saved = f.NoteSaved(conversation_id=conv.id, note=view(stored))
    session.push_frame(f.NoteSaved(conversation_id=conv.id, note=saved.note, ref=frame.ref))
    fan_out(services, conv, saved, session)


@handles(f.NotesQuery, "specialist", "supervisor")
async def on_notes(services: Services, session: Session, frame: f.NotesQuery) -> None:
    conv = await staff_conversation(services, session, frame.conversation_id)
    stored = await notes.of_conversation(services.db, conv.id)
    session.push_frame(f.Notes(conversation_id=conv.id, notes=[view(n) for n in stored], ref=frame.ref))
