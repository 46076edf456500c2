"""Staff notes on a conversation (PRODUCT.md §9): staff only, a member never sees one."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from protocol.frames.base import Frame, Id, Struct


class Note(Frame, tag="note", frozen=True):
    """A staff note on a conversation (PRODUCT.md §9): its specialist or a supervisor.
    Staff only; a member never sees one."""

    conversation_id: Id
    body: Annotated[str, Meta(min_length=1, max_length=4000)]


class NotesQuery(Frame, tag="notes", frozen=True):
    """A conversation's staff notes, oldest first (its specialist or a supervisor)."""

    conversation_id: Id


class NoteAuthor(Struct, frozen=True):
    role: Literal["specialist", "supervisor"]
    name: str


class StaffNote(Struct, frozen=True):
    id: str
    author: NoteAuthor
    body: str
    at: str


class NoteSaved(Frame, tag="note_saved", frozen=True):
    """To every staff device of the conversation (its specialist's, monitoring
    supervisors', the author's): a note was stored."""

    conversation_id: str
    note: StaffNote


class Notes(Frame, tag="notes", frozen=True):
    """The reply to `notes`: the conversation's staff notes, oldest first."""

    conversation_id: str
    notes: list[StaffNote]
