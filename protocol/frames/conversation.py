"""A conversation's own frames (PRODUCT.md §5): messages, typing, reads, history, the end and
feedback, and how the participants appear in them."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from protocol.frames.base import Frame, Id, Role, Seq, Struct


class Send(Frame, tag="send", frozen=True):
    conversation_id: Id
    client_msg_id: Id
    # The body limit is configuration (PEERCHAT_MAX_BODY_CHARS), checked by the gateway so
    # the sender gets `too_large` rather than a generic shape error.
    body: str


class Typing(Frame, tag="typing", frozen=True):
    conversation_id: Id


class Read(Frame, tag="read", frozen=True):
    conversation_id: Id
    seq: Seq


class HistoryQuery(Frame, tag="history", frozen=True):
    conversation_id: Id
    after_seq: Seq = 0
    limit: Annotated[int, Meta(ge=1, le=500)] = 100


class End(Frame, tag="end", frozen=True):
    conversation_id: Id


class Feedback(Frame, tag="feedback", frozen=True):
    conversation_id: Id
    rating: Annotated[int, Meta(ge=1, le=5)]
    comment: Annotated[str, Meta(max_length=2000)] | None = None


class Peer(Struct, frozen=True):
    """The other participant as this user may see them: a member shows only an alias."""

    role: Role
    name: str
    id: str | None = None  # set for specialists only; a member's account id never leaves us


class ConversationTransfer(Struct, frozen=True):
    """A transfer of the conversation under way (PRODUCT.md §9), as this user may see it.
    `offered`: a warm transfer waits for `to` to accept until `expires_at` (its specialist,
    who keeps it until then, and supervisors see this). `waiting`: a cold transfer, back in
    the queue, held by nobody (its member and supervisors see this)."""

    state: Literal["offered", "waiting"]
    to: SpecialistView | None = None
    expires_at: str | None = None


class ConversationSummary(Struct, frozen=True):
    id: str
    last_seq: int
    # Absent while nobody holds the conversation: to its member during a cold transfer.
    peer: Peer | None = None
    tags: list[str] = []
    state: Literal["active", "ended"] = "active"
    # The last `seq` the peer marked read (0: none yet); stored, so it survives a reload.
    peer_read_seq: int | None = None
    # Specialists only: False while the member has no live connection (PRODUCT.md §5).
    member_online: bool | None = None
    transfer: ConversationTransfer | None = None


class MemberView(Struct, frozen=True):
    alias: str


class SpecialistView(Struct, frozen=True):
    id: str
    name: str


class ConversationInfo(Struct, frozen=True):
    id: str
    member: MemberView
    specialist: SpecialistView
    tags: list[str]


class Sender(Struct, frozen=True):
    role: Role
    name: str


class Ack(Frame, tag="ack", frozen=True):
    conversation_id: str
    client_msg_id: str
    seq: int


class Message(Frame, tag="message", frozen=True):
    conversation_id: str
    seq: int
    sender: Sender
    body: str
    client_msg_id: str
    sent_at: str


class PeerTyping(Frame, tag="typing", frozen=True):
    conversation_id: str
    role: Role


class PeerRead(Frame, tag="read", frozen=True):
    conversation_id: str
    seq: int
    role: Role


class History(Frame, tag="history", frozen=True):
    conversation_id: str
    messages: list[Message]
    peer_read_seq: int | None = None


class ConversationEnded(Frame, tag="conversation_ended", frozen=True):
    conversation_id: str
    by: Literal["member", "specialist", "supervisor", "system"]
    reason: str


class FeedbackSaved(Frame, tag="feedback_saved", frozen=True):
    conversation_id: str


class PeerStatus(Frame, tag="peer_status", frozen=True):
    """The other participant's connection: `reconnecting` after a drop, `connected` again,
    or `gone` once the reconnect grace has passed."""

    conversation_id: str
    status: Literal["connected", "reconnecting", "gone"]
