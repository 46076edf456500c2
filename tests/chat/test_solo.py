"""chat/delivery/solo.py on its own: when a person counts as held only here, what is kept of
their skipped rings (bounded in time and count), and what ending solo hands back to ring."""

from __future__ import annotations

import time

import pytest

import chat.delivery.solo as solo_module
from chat.delivery.solo import REPLAY_MAX, Solo
from chat.gateway.ordering import Outbound
from chat.people import member

SAM = member("m1")


def test_one_receiver_with_nothing_changed_since_makes_solo() -> None:
    solo = Solo()
    solo.learn(SAM, solo.changes, 1, still_ours=True)
    assert SAM in solo


@pytest.mark.parametrize(
    ("receivers", "changed", "still_ours"),
    [(2, False, True), (0, False, True), (1, True, True), (1, False, False)],
)
def test_anything_else_teaches_nothing(receivers: int, changed: bool, still_ours: bool) -> None:
    solo = Solo()
    sent_at = solo.changes
    if changed:
        solo.changed()  # a join, an attach or detach, a bus reconnect since the PUBLISH
    solo.learn(SAM, sent_at, receivers, still_ours=still_ours)
    assert SAM not in solo


def test_ending_solo_hands_back_the_recent_skipped_rings_in_order() -> None:
    solo = Solo()
    solo.learn(SAM, solo.changes, 1, still_ours=True)
    for i in range(3):
        solo.skip(SAM, Outbound(b"d%d" % i, "c1", i + 1))
    assert solo.rings_skipped == 3
    assert solo.everyone() == [SAM]
    assert solo.end(SAM) == [Outbound(b"d0", "c1", 1), Outbound(b"d1", "c1", 2), Outbound(b"d2", "c1", 3)]
    assert SAM not in solo and solo.end(SAM) == [] and solo.everyone() == []


def test_skipped_rings_are_bounded_in_count_and_age(monkeypatch: pytest.MonkeyPatch) -> None:
    solo = Solo()
    for i in range(REPLAY_MAX + 5):
        solo.skip(SAM, Outbound(b"%d" % i))
    kept = solo.end(SAM)
    assert len(kept) == REPLAY_MAX and kept[0].data == b"5", "the oldest beyond the bound go"
    monkeypatch.setattr(solo_module, "REPLAY_S", 0.05)
    solo.skip(SAM, Outbound(b"old"))
    time.sleep(0.1)
    solo.skip(SAM, Outbound(b"new"))
    assert [out.data for out in solo.end(SAM)] == [b"new"], "older than REPLAY_S is not re-sent"


def test_forget_drops_solo_and_what_was_skipped() -> None:
    solo = Solo()
    solo.learn(SAM, solo.changes, 1, still_ours=True)
    solo.skip(SAM, Outbound(b"d"))
    solo.forget(SAM)
    assert SAM not in solo and solo.end(SAM) == []
