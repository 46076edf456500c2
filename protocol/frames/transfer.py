"""Handing a conversation on (PRODUCT.md §9): the `transfer` request, what the next specialist
is told on `offer` and `conversation_started`, and what the member and the sender are told."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from protocol.frames.base import Frame, Id, Struct
from protocol.frames.conversation import ConversationTransfer, SpecialistView


class Transfer(Frame, tag="transfer", frozen=True):
    """The conversation's specialist, or a supervisor, hands the conversation on
    (PRODUCT.md §9). With `to_specialist` (warm) that specialist is offered it and the
    sender keeps it until they accept; without (cold) the sender's part ends at once and it
    goes back to the queue ahead of normal requests. The note reaches the next specialist
    and is stored as a staff note of kind `transfer`; a member never sees it."""

    conversation_id: Id
    to_specialist: Id | None = None
    note: Annotated[str, Meta(max_length=4000)] = ""


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


class TransferStatus(Frame, tag="transfer_status", frozen=True):
    """To supervisors watching the queues (`watch_queues`): a transfer of this conversation
    began (`transfer` says which) or is over (no `transfer`: accepted, taken, declined,
    expired or cancelled). The list of conversations (GET /api/conversations) has the
    same `transfer` on each active row. Also to the conversation's specialist when a
    supervisor offers it warm to someone (the begin only: its end reaches them as
    `transfer_failed` or `conversation_ended`)."""

    conversation_id: str
    transfer: ConversationTransfer | None = None
