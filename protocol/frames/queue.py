"""Requests, the queue and offers (PRODUCT.md §5, §7): a member asks, a specialist is offered
or claims, and both learn that a conversation started."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from protocol.frames.base import Frame, Id, Language, Priority, Struct, Tag
from protocol.frames.conversation import ConversationInfo
from protocol.frames.transfer import OfferTransfer, StartedTransfer


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
