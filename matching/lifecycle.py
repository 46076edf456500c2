"""Lifecycles of requests, offers and conversations, each written once as a table.

Every state change in the service goes through :func:`next_state`, so an illegal one
(accepting an expired offer, ending an ended conversation) fails loudly and names the
machine, the state and the event, in the manner of h11's ``_state.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar


class RequestState(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    CANCELLED = "cancelled"


class RequestEvent(StrEnum):
    OFFER_MADE = "offer_made"
    # The pending offer was declined, expired or revoked: back in line, same place.
    OFFER_ENDED = "offer_ended"
    ASSIGN = "assign"  # an offer was accepted, or a specialist claimed it by hand
    CANCEL = "cancel"


class OfferState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    REVOKED = "revoked"


class OfferEvent(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    EXPIRE = "expire"
    REVOKE = "revoke"  # claimed by someone else, cancelled, or the holder went away


class ConversationState(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class ConversationEvent(StrEnum):
    END = "end"


class TransferState(StrEnum):
    """A hand-on of an active conversation (PRODUCT.md §9). The conversation itself stays
    `active` throughout; this machine says who may take it next."""

    OFFERED = "offered"  # warm: offered to one named specialist, the sender still holds it
    QUEUED = "queued"  # cold: nobody holds it; its request waits in the queue
    ACCEPTED = "accepted"  # the next specialist holds it
    DECLINED = "declined"  # warm, refused: the sender kept it
    EXPIRED = "expired"  # warm, unanswered within the offer timeout: the sender kept it
    CANCELLED = "cancelled"  # the conversation ended first, or the target could no longer take it


class TransferEvent(StrEnum):
    ACCEPT = "accept"  # warm: the target accepted; cold: an offer of its request accepted, or a claim
    DECLINE = "decline"
    EXPIRE = "expire"
    CANCEL = "cancel"


S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class Transitions(Generic[S, E]):
    """One machine: its name (for errors) and every legal (state, event) -> state."""

    machine: str
    table: Mapping[tuple[S, E], S]

    def events_from(self, state: S) -> frozenset[E]:
        return frozenset(event for (s, event) in self.table if s == state)


class IllegalTransition(Exception):
    """An event that the machine does not allow in its current state."""

    def __init__(self, machine: str, state: StrEnum, event: StrEnum) -> None:
        super().__init__(f"{machine}: cannot {event.value!r} in state {state.value!r}")
        self.machine = machine
        self.state = state
        self.event = event


_R, _RE = RequestState, RequestEvent
REQUEST_TRANSITIONS: Transitions[RequestState, RequestEvent] = Transitions(
    "request",
    {
        (_R.WAITING, _RE.OFFER_MADE): _R.OFFERED,
        (_R.WAITING, _RE.ASSIGN): _R.ASSIGNED,
        (_R.WAITING, _RE.CANCEL): _R.CANCELLED,
        (_R.OFFERED, _RE.OFFER_ENDED): _R.WAITING,
        (_R.OFFERED, _RE.ASSIGN): _R.ASSIGNED,
        (_R.OFFERED, _RE.CANCEL): _R.CANCELLED,
    },
)

_O, _OE = OfferState, OfferEvent
OFFER_TRANSITIONS: Transitions[OfferState, OfferEvent] = Transitions(
    "offer",
    {
        (_O.PENDING, _OE.ACCEPT): _O.ACCEPTED,
        (_O.PENDING, _OE.DECLINE): _O.DECLINED,
        (_O.PENDING, _OE.EXPIRE): _O.EXPIRED,
        (_O.PENDING, _OE.REVOKE): _O.REVOKED,
    },
)

CONVERSATION_TRANSITIONS: Transitions[ConversationState, ConversationEvent] = Transitions(
    "conversation",
    {(ConversationState.ACTIVE, ConversationEvent.END): ConversationState.ENDED},
)


_T, _TE = TransferState, TransferEvent
TRANSFER_TRANSITIONS: Transitions[TransferState, TransferEvent] = Transitions(
    "transfer",
    {
        (_T.OFFERED, _TE.ACCEPT): _T.ACCEPTED,
        (_T.OFFERED, _TE.DECLINE): _T.DECLINED,
        (_T.OFFERED, _TE.EXPIRE): _T.EXPIRED,
        (_T.OFFERED, _TE.CANCEL): _T.CANCELLED,
        (_T.QUEUED, _TE.ACCEPT): _T.ACCEPTED,
        (_T.QUEUED, _TE.CANCEL): _T.CANCELLED,
    },
)


def next_state(transitions: Transitions[S, E], state: S, event: E) -> S:
    """The state after ``event``; raises :class:`IllegalTransition` if it is not allowed.

    Pass the result to storage with a compare-and-set on the old state: the table says
    what is legal, the database says what actually happened first.
    """
    try:
        return transitions.table[(state, event)]
    except KeyError:
        raise IllegalTransition(transitions.machine, state, event) from None


def is_final(transitions: Transitions[S, E], state: S) -> bool:
    """True when no event can move ``state`` any further."""
    return not transitions.events_from(state)
