"""Every frame of protocol v1 (PRODUCT.md §5) as a typed value.

Client frames are what a browser or app sends; server frames are what we send back.
Each is a frozen msgspec Struct whose `type` tag is its wire name, so decoding validates
shape and types in one pass and `protocol.schema` derives the JSON Schema from these very
classes. Fields may be added in later versions; names and meanings here are fixed.

The frames live in one module per concern, as the handlers do (`session`, `conversation`,
`queue`, `safety`, `supervision`, `notes`, `boundaries`, `transfer`; shared bases and field
types in `base`). Import them from here, `from protocol import frames as f` then `f.Send`:
this package re-exports every name and holds the two tagged unions, so a new frame must be
added to its module AND to `ClientFrame` or `ServerFrame` below.
"""

from __future__ import annotations

from protocol.frames.base import Frame, Id, Language, Priority, Ref, Role, Seq, Struct, Tag
from protocol.frames.boundaries import Blocked, BlockMember, Report, Reported
from protocol.frames.conversation import (
    Ack,
    ConversationEnded,
    ConversationInfo,
    ConversationSummary,
    ConversationTransfer,
    End,
    Feedback,
    FeedbackSaved,
    History,
    HistoryQuery,
    MemberView,
    Message,
    Peer,
    PeerRead,
    PeerStatus,
    PeerTyping,
    Read,
    Send,
    Sender,
    SpecialistView,
    Typing,
)
from protocol.frames.notes import Note, NoteAuthor, Notes, NoteSaved, NotesQuery, StaffNote
from protocol.frames.queue import (
    Accept,
    Alternative,
    AvailabilityChanged,
    Cancel,
    Cancelled,
    Claim,
    ConversationStarted,
    Decline,
    Declined,
    OfferMade,
    OfferRevoked,
    PastPeer,
    Queue,
    Queued,
    QueueEntry,
    QueueUpdate,
    QueueWatch,
    RequestInfo,
    RequestPeer,
    SetAvailability,
)
from protocol.frames.safety import (
    AckAlert,
    AckedBy,
    Alert,
    AlertAcked,
    AlertKind,
    AlertLevel,
    Flag,
    Flagged,
    Risk,
    WrapUp,
    WrapUpSaved,
)
from protocol.frames.session import Error, Hello, Reauth, Reauthed, User, Welcome
from protocol.frames.supervision import (
    Join,
    Leave,
    Monitor,
    Monitoring,
    ParticipantJoined,
    ParticipantLeft,
    QueueStats,
    SpecialistCounts,
    TagLoad,
    Unmonitor,
    WatchQueues,
    Whisper,
    Whispered,
    WhisperFrom,
)
from protocol.frames.transfer import (
    OfferTransfer,
    StartedTransfer,
    Transfer,
    TransferFailed,
    TransferFrom,
    TransferState,
    TransferStatus,
)

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
    | TransferStatus
    | Error
)

SERVER_FRAMES: tuple[type[Frame], ...] = ServerFrame.__args__

__all__ = [
    "CLIENT_FRAMES",
    "SERVER_FRAMES",
    "Accept",
    "Ack",
    "AckAlert",
    "AckedBy",
    "Alert",
    "AlertAcked",
    "AlertKind",
    "AlertLevel",
    "Alternative",
    "AvailabilityChanged",
    "BlockMember",
    "Blocked",
    "Cancel",
    "Cancelled",
    "Claim",
    "ClientFrame",
    "ConversationEnded",
    "ConversationInfo",
    "ConversationStarted",
    "ConversationSummary",
    "ConversationTransfer",
    "Decline",
    "Declined",
    "End",
    "Error",
    "Feedback",
    "FeedbackSaved",
    "Flag",
    "Flagged",
    "Frame",
    "Hello",
    "History",
    "HistoryQuery",
    "Id",
    "Join",
    "Language",
    "Leave",
    "MemberView",
    "Message",
    "Monitor",
    "Monitoring",
    "Note",
    "NoteAuthor",
    "NoteSaved",
    "Notes",
    "NotesQuery",
    "OfferMade",
    "OfferRevoked",
    "OfferTransfer",
    "ParticipantJoined",
    "ParticipantLeft",
    "PastPeer",
    "Peer",
    "PeerRead",
    "PeerStatus",
    "PeerTyping",
    "Priority",
    "Queue",
    "QueueEntry",
    "QueueStats",
    "QueueUpdate",
    "QueueWatch",
    "Queued",
    "Read",
    "Reauth",
    "Reauthed",
    "Ref",
    "Report",
    "Reported",
    "RequestInfo",
    "RequestPeer",
    "Risk",
    "Role",
    "Send",
    "Sender",
    "Seq",
    "ServerFrame",
    "SetAvailability",
    "SpecialistCounts",
    "SpecialistView",
    "StaffNote",
    "StartedTransfer",
    "Struct",
    "Tag",
    "TagLoad",
    "Transfer",
    "TransferFailed",
    "TransferFrom",
    "TransferState",
    "TransferStatus",
    "Typing",
    "Unmonitor",
    "User",
    "WatchQueues",
    "Welcome",
    "Whisper",
    "WhisperFrom",
    "Whispered",
    "WrapUp",
    "WrapUpSaved",
]
