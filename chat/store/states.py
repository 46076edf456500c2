"""The lifecycle tables of `matching.lifecycle`, as the SQL of compare-and-set updates.

Each constant is `Move(to, from_)`: `to` is the state an event leads to and `from_` the
states it may leave, as SQL literals, derived from the one table so PostgreSQL and the
engine agree on what is legal. They hold enum values only, never user input, so they may
be interpolated into SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from matching.lifecycle import (
    CONVERSATION_TRANSITIONS,
    OFFER_TRANSITIONS,
    REQUEST_TRANSITIONS,
    TRANSFER_TRANSITIONS,
    ConversationEvent,
    ConversationState,
    OfferEvent,
    RequestEvent,
    TransferEvent,
    TransferState,
    Transitions,
    is_final,
)

S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class Move:
    to: str  # e.g. 'assigned'
    from_: str  # e.g. ('waiting', 'offered')


def _literal(state: S) -> str:
    return "'" + state.value.replace("'", "''") + "'"


def _tuple(states: list[S]) -> str:
    return "(" + ", ".join(_literal(s) for s in sorted(states)) + ")"


def move(transitions: Transitions[S, E], event: E) -> Move:
    pairs = [(state, target) for (state, ev), target in transitions.table.items() if ev == event]
    targets = {target for _, target in pairs}
    if len(targets) != 1:
        raise ValueError(f"{transitions.machine}: {event.value} must lead to one state, not {targets}")
    return Move(_literal(targets.pop()), _tuple([state for state, _ in pairs]))


def open_states(transitions: Transitions[S, E], states: type[S]) -> str:
    """The states something can still leave, e.g. a request still in line."""
    return _tuple([s for s in states if not is_final(transitions, s)])


REQUEST_OFFERED = move(REQUEST_TRANSITIONS, RequestEvent.OFFER_MADE)
REQUEST_BACK_IN_LINE = move(REQUEST_TRANSITIONS, RequestEvent.OFFER_ENDED)
REQUEST_ASSIGNED = move(REQUEST_TRANSITIONS, RequestEvent.ASSIGN)
REQUEST_CANCELLED = move(REQUEST_TRANSITIONS, RequestEvent.CANCEL)
OFFER_ACCEPTED = move(OFFER_TRANSITIONS, OfferEvent.ACCEPT)
OFFER_DECLINED = move(OFFER_TRANSITIONS, OfferEvent.DECLINE)
OFFER_EXPIRED = move(OFFER_TRANSITIONS, OfferEvent.EXPIRE)
OFFER_REVOKED = move(OFFER_TRANSITIONS, OfferEvent.REVOKE)
CONVERSATION_ENDED = move(CONVERSATION_TRANSITIONS, ConversationEvent.END)
# The one state a conversation is open in, as an SQL literal ('active').
CONVERSATION_ACTIVE = _literal(ConversationState.ACTIVE)
TRANSFER_ACCEPTED = move(TRANSFER_TRANSITIONS, TransferEvent.ACCEPT)
TRANSFER_DECLINED = move(TRANSFER_TRANSITIONS, TransferEvent.DECLINE)
TRANSFER_EXPIRED = move(TRANSFER_TRANSITIONS, TransferEvent.EXPIRE)
TRANSFER_CANCELLED = move(TRANSFER_TRANSITIONS, TransferEvent.CANCEL)
# A transfer still under way (offered or queued): one per conversation at a time.
TRANSFER_OPEN = open_states(TRANSFER_TRANSITIONS, TransferState)
TRANSFER_OFFERED = _literal(TransferState.OFFERED)
TRANSFER_QUEUED = _literal(TransferState.QUEUED)
