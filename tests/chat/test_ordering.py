"""chat/gateway/ordering.py on its own: what one socket may be sent next, per conversation.
Repeats are dropped, a message ahead of a gap is held until the gap closes, starts and ends
are told once, and the gap timer fires only while something is still held."""

from __future__ import annotations

import asyncio

import pytest

import chat.gateway.ordering as ordering_module
from chat.gateway.ordering import Ordering, Outbound


def msg(seq: int, conv: str = "c1") -> Outbound:
    return Outbound(f"{conv}:{seq}".encode(), conv, seq)


def ended(conv: str, by: str, reason: str) -> Outbound:
    """A `conversation_ended` frame as the gateway queues it (ordering reads its reason)."""
    frame = f'{{"type":"conversation_ended","conversation_id":"{conv}","by":"{by}","reason":"{reason}"}}'
    return Outbound(frame.encode(), conv, None, ends_conversation=True)


async def test_in_order_messages_go_out_and_repeats_are_dropped() -> None:
    order = Ordering(on_gap=lambda c: None)
    order.seen["c1"] = 0
    assert order.plan(msg(1)) == [b"c1:1"]
    assert order.plan(msg(2)) == [b"c1:2"]
    assert order.plan(msg(2)) == []
    assert order.plan(msg(1)) == []
    assert order.seen == {"c1": 2}


async def test_a_message_ahead_of_a_gap_is_held_then_released_in_order() -> None:
    order = Ordering(on_gap=lambda c: None)
    order.seen["c1"] = 1
    assert order.plan(msg(4)) == []
    assert order.plan(msg(3)) == []
    assert "c1" in order.held
    assert order.plan(msg(2)) == [b"c1:2", b"c1:3", b"c1:4"]
    assert order.seen["c1"] == 4 and "c1" not in order.held


async def test_releasable_after_a_catch_up_sends_what_now_follows_and_drops_the_stale() -> None:
    order = Ordering(on_gap=lambda c: None)
    order.seen["c1"] = 1
    order.plan(msg(3))
    order.plan(msg(5))
    order.seen["c1"] = 3  # the catch-up from PostgreSQL sent 2 and 3
    assert order.releasable("c1") == []  # 3 was stale; 5 still waits for 4
    assert order.held["c1"].keys() == {5}
    order.seen["c1"] = 4
    assert order.releasable("c1") == [b"c1:5"]
    assert "c1" not in order.held


async def test_start_and_end_are_told_once() -> None:
    order = Ordering(on_gap=lambda c: None)
    start = Outbound(b"start", "c1", None, starts_conversation=True)
    end = Outbound(b"end", "c1", None, ends_conversation=True)
    assert order.plan(start) == [b"start"] and order.seen == {"c1": 0}
    assert order.plan(start) == []
    assert order.plan(end) == [b"end"] and order.ended == {"c1"}
    assert order.plan(end) == []


async def test_the_gap_timer_fires_once_and_only_while_messages_are_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ordering_module, "GAP_WAIT_S", 0.01)
    fired: list[str] = []
    order = Ordering(on_gap=fired.append)
    order.seen.update({"c1": 0, "c2": 0})
    order.plan(msg(2, "c1"))
    order.plan(msg(3, "c1"))  # one timer per gap, not per held message
    order.plan(msg(2, "c2"))
    assert order.plan(msg(1, "c2")) == [b"c2:1", b"c2:2"]  # c2's gap closed in time
    for _ in range(200):
        if fired:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert fired == ["c1"]


async def test_after_a_transferred_end_nothing_more_of_it_and_a_hand_back_starts_again() -> None:
    # PRODUCT.md §9: the specialist who handed a conversation on gets no message of it after
    # their `conversation_ended` (reason `transferred`), even one stored a moment before.
    order = Ordering(on_gap=lambda c: None)
    order.seen["c1"] = 1
    assert order.plan(msg(3)) == []  # held ahead of a gap ...
    handed_on = ended("c1", "specialist", "transferred")
    assert order.plan(handed_on) == [handed_on.data]
    assert "c1" not in order.held  # ... and dropped with the hand-on
    assert order.plan(msg(2)) == [] and order.plan(msg(4)) == []
    # Nor the member's `typing` a process with the old pair still cached relayed (issue 16).
    typing = Outbound(b'{"type":"typing","conversation_id":"c1","role":"member"}', "c1")
    assert order.plan(typing) == []
    assert order.plan(Outbound(b"typing c2", "c2")) == [b"typing c2"]
    assert order.plan(msg(1, "c2")) == [b"c2:1"]  # other conversations are untouched
    # An ordinary end does not cut anything off.
    order.seen["c3"] = 0
    plain = ended("c3", "member", "ended")
    assert order.plan(plain) == [plain.data]
    assert order.plan(msg(1, "c3")) == [b"c3:1"]
    # Handed back to them later: it starts again, from seq 0.
    start = Outbound(b"started", "c1", None, starts_conversation=True)
    assert order.plan(start) == [b"started"]
    assert order.plan(msg(1)) == [b"c1:1"]
