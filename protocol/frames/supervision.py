"""What supervisors do (PRODUCT.md §8): watch the queues, monitor, join and leave a
conversation, whisper to its specialist."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from protocol.frames.base import Frame, Id, Struct
from protocol.frames.safety import Alert


class WatchQueues(Frame, tag="watch_queues", frozen=True):
    pass


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


class SpecialistCounts(Struct, frozen=True):
    available: int = 0
    busy: int = 0
    away: int = 0
    wrap_up: int = 0  # online specialists in wrap-up after a conversation (PRODUCT.md §8)


class TagLoad(Struct, frozen=True):
    waiting: int
    longest_wait_s: int


class WhisperFrom(Struct, frozen=True):
    name: str


class QueueStats(Frame, tag="queue_stats", frozen=True):
    waiting: int
    longest_wait_s: int
    by_tag: dict[str, TagLoad]
    specialists: SpecialistCounts
    active_conversations: int
    alerts: list[Alert]


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


class Whispered(Frame, tag="whisper", frozen=True):
    """To every device of the conversation's specialist (and, with its `ref`, to the
    whispering supervisor): words from a supervisor, for the specialist only."""

    conversation_id: str
    body: str
    sent_at: str
    from_: WhisperFrom = msgspec.field(name="from")
