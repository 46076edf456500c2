"""Every frame of protocol v1 (PRODUCT.md §5) as a typed value.

Client frames are what a browser or app sends; server frames are what we send back.
Each is a frozen msgspec Struct whose `type` tag is its wire name, so decoding validates
shape and types in one pass and `protocol.schema` derives the JSON Schema from these very
classes. Fields may be added in later versions; names and meanings here are fixed.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from protocol.codes import ErrorCode

Id = Annotated[str, Meta(min_length=1, max_length=64)]
Ref = Annotated[str, Meta(max_length=64)]
Tag = Annotated[str, Meta(min_length=1, max_length=40)]
Language = Annotated[str, Meta(min_length=2, max_length=16)]
# PostgreSQL stores seqs as `integer`: a larger one is a bad frame, not a failed query.
Seq = Annotated[int, Meta(ge=0, le=2**31 - 1)]
Role = Literal["member", "specialist", "supervisor"]
Priority = Literal["urgent", "normal"]


class Frame(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    """Any frame. `ref`, when a client sets it, is copied into the direct reply only."""

    ref: Ref | None = None


# --------------------------------------------------------------------------- client


class Hello(Frame, tag="hello", frozen=True):
    token: Annotated[str, Meta(max_length=8192)]
    resume: dict[Id, Seq] | None = None


class RequestPeer(Frame, tag="request", frozen=True):
    tags: Annotated[list[Tag], Meta(max_length=10)] = []
    language: Language | None = None
    note: Annotated[str, Meta(max_length=1000)] | None = None
    prefer_specialist: Id | None = None


class Cancel(Frame, tag="cancel", frozen=True):
    request_id: Id


class SetAvailability(Frame, tag="availability", frozen=True):
    status: Literal["available", "away"]


class Accept(Frame, tag="accept", frozen=True):
    offer_id: Id


class Decline(Frame, tag="decline", frozen=True):
    offer_id: Id


class QueueWatch(Frame, tag="queue_watch", frozen=True):
    pass


class Claim(Frame, tag="claim", frozen=True):
    request_id: Id


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


class WatchQueues(Frame, tag="watch_queues", frozen=True):
    pass


class Reauth(Frame, tag="reauth", frozen=True):
    """A fresh token for the same (role, sub), sent before the current one's `exp`."""

    token: Annotated[str, Meta(max_length=8192)]


class Flag(Frame, tag="flag", frozen=True):
    """The conversation's specialist asks supervisors for support (PRODUCT.md §8); `high`
    also marks the conversation `risk: "high"`. The note goes to supervisors only."""

    conversation_id: Id
    level: Literal["concern", "high"]
    note: Annotated[str, Meta(max_length=1000)] | None = None


class Monitor(Frame, tag="monitor", frozen=True):
    """A supervisor watches a live conversation, read-only. `reason` is required and
    audited before anything is sent; `emergency: true` records it as an emergency access
    (42 CFR Part 2 §2.51), with the reason saying what the emergency is."""

    conversation_id: Id
    reason: Annotated[str, Meta(max_length=500)] = ""
    emergency: bool = False


class Unmonitor(Frame, tag="unmonitor", frozen=True):
    conversation_id: Id


class Join(Frame, tag="join", frozen=True):
    """A supervisor becomes a visible third participant: may `send`; both sides are told.
    `reason` required and audited before anything is sent; `emergency` as for `monitor`."""

    conversation_id: Id
    reason: Annotated[str, Meta(max_length=500)] = ""
    emergency: bool = False


class Leave(Frame, tag="leave", frozen=True):
    conversation_id: Id


class Whisper(Frame, tag="whisper", frozen=True):
    """A supervisor who watches the conversation (on this socket) writes to its specialist
    only; stored as a staff note of kind `whisper`, never shown to the member."""

    conversation_id: Id
    body: Annotated[str, Meta(min_length=1, max_length=4000)]


class WrapUp(Frame, tag="wrap_up", frozen=True):
    """The specialist records how an ended conversation of theirs went; ends their wrap-up
    now, or at its floor (half the length after an urgent or high-risk conversation)."""

    conversation_id: Id
    outcome: Annotated[str, Meta(min_length=1, max_length=200)]
    risk_level: Literal["none", "low", "medium", "high"]
    note: Annotated[str, Meta(max_length=2000)] | None = None


class AckAlert(Frame, tag="ack_alert", frozen=True):
    """A supervisor closes an open alert for every supervisor."""

    alert_id: Id


class Note(Frame, tag="note", frozen=True):
    """A staff note on a conversation (PRODUCT.md §9): its specialist or a supervisor.
    Staff only; a member never sees one."""

    conversation_id: Id
    body: Annotated[str, Meta(min_length=1, max_length=4000)]


class NotesQuery(Frame, tag="notes", frozen=True):
    """A conversation's staff notes, oldest first (its specialist or a supervisor)."""

    conversation_id: Id


class BlockMember(Frame, tag="block", frozen=True):
    """The conversation's specialist blocks its member (PRODUCT.md §9): for
    PEERCHAT_BLOCK_DAYS the pair is never matched, claimed or transferred. `end: true` also
    ends the conversation if it is active."""

    conversation_id: Id
    reason: Annotated[str, Meta(max_length=500)] = ""
    end: bool = False


class Report(Frame, tag="report", frozen=True):
    """The member reports the specialist of their conversation, during or after it: the pair
    is never matched again."""

    conversation_id: Id
    reason: Annotated[str, Meta(max_length=200)] = ""
    details: Annotated[str, Meta(max_length=4000)] = ""


class Transfer(Frame, tag="transfer", frozen=True):
    """The conversation's specialist, or a supervisor, hands the conversation on
    (PRODUCT.md §9). With `to_specialist` (warm) that specialist is offered it and the
    sender keeps it until they accept; without (cold) the sender's part ends at once and it
    goes back to the queue ahead of normal requests. The note reaches the next specialist
    and is stored as a staff note of kind `transfer`; a member never sees it."""

    conversation_id: Id
    to_specialist: Id | None = None
    note: Annotated[str, Meta(max_length=4000)] = ""


ClientFrame = (
    Hello
    | RequestPeer
    | Cancel
    | SetAvailability
    | Accept
    | Decline
    | QueueWatch
    | Claim
    | Send
    | Typing
    | Read
    | HistoryQuery
    | End
    | Feedback
    | WatchQueues
    | Reauth
    | Flag
    | AckAlert
    | Monitor
    | Unmonitor
    | Whisper
    | Join
    | Leave
    | WrapUp
    | Note
    | NotesQuery
    | BlockMember
    | Report
    | Transfer
)
CLIENT_FRAMES: tuple[type[Frame], ...] = ClientFrame.__args__

# --------------------------------------------------------------------------- server


class Struct(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A value nested inside a frame."""


class User(Struct, frozen=True):
    id: str
    role: Role
    name: str


class Peer(Struct, frozen=True):
    """The other participant as this user may see them: a member shows only an alias."""

    role: Role
    name: str
    id: str | None = None  # set for specialists only; a member's account id never leaves us


class ConversationSummary(Struct, frozen=True):
    id: str
    peer: Peer
    last_seq: int
    tags: list[str] = []
    state: Literal["active", "ended"] = "active"
    # The last `seq` the peer marked read (0: none yet); stored, so it survives a reload.
    peer_read_seq: int | None = None
    # Specialists only: False while the member has no live connection (PRODUCT.md §5).
    member_online: bool | None = None


class Alternative(Struct, frozen=True):
    """Somewhere else to turn (`PEERCHAT_ALTERNATIVES`): a forum, a group, a warm line."""

    name: str
    url: str
    description: str = ""


class PastPeer(Struct, frozen=True):
    """A specialist this member talked with, for `request.prefer_specialist`."""

    id: str
    name: str
    last_at: str


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


class QueueEntry(Struct, frozen=True):
    request_id: str
    tags: list[str]
    language: str | None
    waited_s: int
    priority: Priority
    # False while the member has no live connection (they keep their place for the grace).
    member_online: bool | None = None


class RequestInfo(Struct, frozen=True):
    request_id: str
    tags: list[str]
    language: str | None
    position: int
    estimated_wait_s: int


class SpecialistCounts(Struct, frozen=True):
    available: int = 0
    busy: int = 0
    away: int = 0
    wrap_up: int = 0  # online specialists in wrap-up after a conversation (PRODUCT.md §8)


class TagLoad(Struct, frozen=True):
    waiting: int
    longest_wait_s: int


AlertKind = Literal["urgent_request", "risk_message", "flagged", "long_wait", "report", "block"]
AlertLevel = Literal["concern", "high"]


class Alert(Struct, frozen=True):
    """An open supervisor alert (PRODUCT.md §8), stored until one supervisor acks it.
    `waited_s` is how long the request had waited when the alert was raised; `level` and
    `note` come with a `flagged` alert (`level: "high"` with `risk_message`)."""

    id: str
    kind: AlertKind
    at: str
    request_id: str | None = None
    conversation_id: str | None = None
    tags: list[str] | None = None
    waited_s: int | None = None
    level: AlertLevel | None = None
    note: str | None = None  # a flag's note, for supervisors


class TransferFrom(Struct, frozen=True):
    """Who handed a conversation on, by display name."""

    name: str


class OfferTransfer(Struct, frozen=True):
    """On an `offer` that is a transfer: whose conversation it is and their handoff note."""

    conversation_id: str
    note: str
    from_: TransferFrom = msgspec.field(name="from")


class StartedTransfer(Struct, frozen=True):
    """On `conversation_started` to the specialist who takes a handed-on conversation."""

    note: str
    from_: TransferFrom = msgspec.field(name="from")


class Welcome(Frame, tag="welcome", frozen=True):
    user: User
    conversations: list[ConversationSummary]
    requests: list[RequestInfo]
    offers: list[OfferMade]
    availability: Literal["available", "away"] | None = None  # specialists only
    # Opening hours (PEERCHAT_HOURS): whether the service is open now, and if not, when it opens.
    open: bool | None = None
    opens_at: str | None = None
    # When closed, when nobody is online, or during a long wait: where else to turn.
    alternatives: list[Alternative] | None = None
    past_peers: list[PastPeer] | None = None  # members only
    wrap_up_until: str | None = None  # specialists in wrap-up (PRODUCT.md §8)


class Queued(Frame, tag="queued", frozen=True):
    request_id: str
    position: int
    estimated_wait_s: int
    open: bool | None = None
    opens_at: str | None = None
    alternatives: list[Alternative] | None = None
    # `suspended` only: when the member's suspension ends.
    until: str | None = None


class QueueUpdate(Frame, tag="queue_update", frozen=True):
    request_id: str
    position: int
    estimated_wait_s: int
    # Set once when the specialist the member asked for could not take the request in
    # time, so it now goes to the next best: "preferred_unavailable".
    notice: str | None = None
    # While the estimate is a long wait: where else to turn meanwhile (the place is kept).
    alternatives: list[Alternative] | None = None


class Cancelled(Frame, tag="cancelled", frozen=True):
    request_id: str
    reason: str = "cancelled"


class AvailabilityChanged(Frame, tag="availability", frozen=True):
    status: Literal["available", "away"]
    reason: str | None = None  # e.g. "missed_offers" when we set a specialist away
    wrap_up_until: str | None = None  # while a wrap-up lasts: no offers, no claims until then


class OfferMade(Frame, tag="offer", frozen=True):
    offer_id: str
    request_id: str
    tags: list[str]
    language: str | None
    note: str | None
    waited_s: int
    expires_in_s: int
    priority: Priority
    # False while the member has no live connection (they keep their place for the grace).
    member_online: bool | None = None
    # Set when the offer hands on a conversation that already started (PRODUCT.md §9).
    transfer: OfferTransfer | None = None


class Declined(Frame, tag="declined", frozen=True):
    offer_id: str


class OfferRevoked(Frame, tag="offer_revoked", frozen=True):
    offer_id: str
    reason: str = "claimed"


class Queue(Frame, tag="queue", frozen=True):
    requests: list[QueueEntry]


class ConversationStarted(Frame, tag="conversation_started", frozen=True):
    conversation: ConversationInfo
    # To the specialist who takes a handed-on conversation only: who handed it on and why.
    transfer: StartedTransfer | None = None


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


class QueueStats(Frame, tag="queue_stats", frozen=True):
    waiting: int
    longest_wait_s: int
    by_tag: dict[str, TagLoad]
    specialists: SpecialistCounts
    active_conversations: int
    alerts: list[Alert]


class Reauthed(Frame, tag="reauthed", frozen=True):
    """The socket now lives until `exp` (ISO 8601 UTC), the new token's expiry."""

    exp: str


class Error(Frame, tag="error", frozen=True):
    code: ErrorCode
    message: str
    # `closed_hours` only: when the service opens, and where else to turn meanwhile.
    opens_at: str | None = None
    alternatives: list[Alternative] | None = None
    # `suspended` only: when the member's suspension ends.
    until: str | None = None


class Risk(Frame, tag="risk", frozen=True):
    """To the specialist's devices (and monitoring supervisors): the member message `seq`
    matched the risk phrase list; the conversation is now `risk: "high"` for good."""

    conversation_id: str
    level: Literal["high"]
    seq: Seq


class Monitoring(Frame, tag="monitoring", frozen=True):
    """To the conversation's specialist: a supervisor started (`watching: true`) or
    stopped watching. Also the reply to `unmonitor`."""

    conversation_id: str
    watching: bool


class ParticipantJoined(Frame, tag="participant_joined", frozen=True):
    """To every device of the member and the specialist (and the joining supervisor)."""

    conversation_id: str
    role: Literal["supervisor"]
    name: str


class ParticipantLeft(Frame, tag="participant_left", frozen=True):
    conversation_id: str
    role: Literal["supervisor"]
    name: str


class WhisperFrom(Struct, frozen=True):
    name: str


class Whispered(Frame, tag="whisper", frozen=True):
    """To every device of the conversation's specialist (and, with its `ref`, to the
    whispering supervisor): words from a supervisor, for the specialist only."""

    conversation_id: str
    body: str
    sent_at: str
    from_: WhisperFrom = msgspec.field(name="from")


class WrapUpSaved(Frame, tag="wrap_up_saved", frozen=True):
    conversation_id: str
    wrap_up_until: str


class Flagged(Frame, tag="flagged", frozen=True):
    conversation_id: str
    alert_id: str


class AckedBy(Struct, frozen=True):
    name: str


class AlertAcked(Frame, tag="alert_acked", frozen=True):
    """To every watching supervisor on every process: the alert is closed."""

    alert_id: str
    by: AckedBy


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


class Blocked(Frame, tag="blocked", frozen=True):
    block_id: str
    until: str


class Reported(Frame, tag="reported", frozen=True):
    report_id: str


class TransferState(Frame, tag="transfer", frozen=True):
    """To every device of the member: their conversation is being handed on (`waiting`:
    nobody has it yet, their messages are kept) or has been (`joined`, with who now has it)."""

    conversation_id: str
    state: Literal["waiting", "joined"]
    specialist: SpecialistView | None = None


class TransferFailed(Frame, tag="transfer_failed", frozen=True):
    """To every device of the specialist who asked for a warm transfer: it did not happen
    (`declined`, `expired`, or `unavailable`: the chosen specialist could no longer take
    it), and the conversation is still theirs."""

    conversation_id: str
    reason: Literal["declined", "expired", "unavailable"]


ServerFrame = (
    Welcome
    | Queued
    | QueueUpdate
    | Cancelled
    | AvailabilityChanged
    | OfferMade
    | Declined
    | OfferRevoked
    | Queue
    | ConversationStarted
    | Ack
    | Message
    | PeerTyping
    | PeerRead
    | History
    | ConversationEnded
    | FeedbackSaved
    | PeerStatus
    | QueueStats
    | Reauthed
    | Risk
    | Monitoring
    | ParticipantJoined
    | ParticipantLeft
    | Whispered
    | WrapUpSaved
    | Flagged
    | AlertAcked
    | NoteSaved
    | Notes
    | Blocked
    | Reported
    | TransferState
    | TransferFailed
    | Error
)
SERVER_FRAMES: tuple[type[Frame], ...] = ServerFrame.__args__
