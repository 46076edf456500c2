from __future__ import annotations

import pytest

from matching.lifecycle import (
    CONVERSATION_TRANSITIONS,
    OFFER_TRANSITIONS,
    REQUEST_TRANSITIONS,
    TRANSFER_TRANSITIONS,
    ConversationEvent,
    ConversationState,
    IllegalTransition,
    OfferEvent,
    OfferState,
    RequestEvent,
    RequestState,
    TransferEvent,
    TransferState,
    is_final,
    next_state,
)


def test_wire_values_are_fixed() -> None:
    assert [s.value for s in RequestState] == ["waiting", "offered", "assigned", "cancelled"]
    assert [s.value for s in OfferState] == ["pending", "accepted", "declined", "expired", "revoked"]
    assert [s.value for s in ConversationState] == ["active", "ended"]


def test_request_lifecycle() -> None:
    state = next_state(REQUEST_TRANSITIONS, RequestState.WAITING, RequestEvent.OFFER_MADE)
    assert state is RequestState.OFFERED
    state = next_state(REQUEST_TRANSITIONS, state, RequestEvent.OFFER_ENDED)
    assert state is RequestState.WAITING
    assert next_state(REQUEST_TRANSITIONS, state, RequestEvent.ASSIGN) is RequestState.ASSIGNED
    assert (
        next_state(REQUEST_TRANSITIONS, RequestState.OFFERED, RequestEvent.CANCEL) is RequestState.CANCELLED
    )


@pytest.mark.parametrize("event", list(OfferEvent))
def test_every_offer_outcome_is_final(event: OfferEvent) -> None:
    state = next_state(OFFER_TRANSITIONS, OfferState.PENDING, event)
    assert is_final(OFFER_TRANSITIONS, state)
    with pytest.raises(IllegalTransition):
        next_state(OFFER_TRANSITIONS, state, OfferEvent.ACCEPT)


def test_illegal_transition_names_machine_state_and_event() -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_state(OFFER_TRANSITIONS, OfferState.EXPIRED, OfferEvent.ACCEPT)
    assert str(caught.value) == "offer: cannot 'accept' in state 'expired'"
    assert caught.value.machine == "offer"
    assert caught.value.state is OfferState.EXPIRED
    assert caught.value.event is OfferEvent.ACCEPT


def test_assigned_and_cancelled_requests_are_final() -> None:
    for state in (RequestState.ASSIGNED, RequestState.CANCELLED):
        assert is_final(REQUEST_TRANSITIONS, state)
        for event in RequestEvent:
            with pytest.raises(IllegalTransition):
                next_state(REQUEST_TRANSITIONS, state, event)


def test_conversation_ends_once() -> None:
    ended = next_state(CONVERSATION_TRANSITIONS, ConversationState.ACTIVE, ConversationEvent.END)
    assert ended is ConversationState.ENDED
    with pytest.raises(IllegalTransition, match="conversation: cannot 'end' in state 'ended'"):
        next_state(CONVERSATION_TRANSITIONS, ended, ConversationEvent.END)


def test_transfer_lifecycle() -> None:
    assert [s.value for s in TransferState] == [
        "offered",
        "queued",
        "accepted",
        "declined",
        "expired",
        "cancelled",
    ]
    # Warm: the one named specialist answers, or time does; the conversation's end cancels it.
    for event, after in [
        (TransferEvent.ACCEPT, TransferState.ACCEPTED),
        (TransferEvent.DECLINE, TransferState.DECLINED),
        (TransferEvent.EXPIRE, TransferState.EXPIRED),
        (TransferEvent.CANCEL, TransferState.CANCELLED),
    ]:
        state = next_state(TRANSFER_TRANSITIONS, TransferState.OFFERED, event)
        assert state is after and is_final(TRANSFER_TRANSITIONS, state)
    # Cold: nobody declines a queue entry; it is taken or the conversation ends first.
    assert (
        next_state(TRANSFER_TRANSITIONS, TransferState.QUEUED, TransferEvent.ACCEPT) is TransferState.ACCEPTED
    )
    assert (
        next_state(TRANSFER_TRANSITIONS, TransferState.QUEUED, TransferEvent.CANCEL)
        is TransferState.CANCELLED
    )
    for event in (TransferEvent.DECLINE, TransferEvent.EXPIRE):
        with pytest.raises(IllegalTransition):
            next_state(TRANSFER_TRANSITIONS, TransferState.QUEUED, event)
    # Two accepts: the second finds it final.
    with pytest.raises(IllegalTransition):
        next_state(TRANSFER_TRANSITIONS, TransferState.ACCEPTED, TransferEvent.ACCEPT)
