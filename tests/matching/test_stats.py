from __future__ import annotations

from matching.model import Status
from matching.stats import RiskAlert, SpecialistCounts, TagLoad, queue_stats
from tests.matching.matching_harness import make_request, make_specialist


def test_queue_stats_from_a_snapshot() -> None:
    requests = [
        make_request("a", 100.0, tags=("grief", "alcohol")),
        make_request("b", 150.0, tags=("grief",), urgent=True),
        make_request("c", 190.0),
    ]
    specialists = [
        make_specialist("free", max_chats=2, active=1),
        make_specialist("full", max_chats=2, active=2),
        make_specialist("offer-full", max_chats=1, active=0),
        make_specialist("away", status=Status.AWAY, active=1),
        make_specialist("gone", status=Status.OFFLINE),
    ]
    stats = queue_stats(requests, specialists, 4, now=200.5, pending_offers={"offer-full": 1})
    assert stats.waiting == 3
    assert stats.longest_wait_s == 100
    assert stats.by_tag == {"alcohol": TagLoad(1, 100), "grief": TagLoad(2, 100)}
    assert stats.specialists == SpecialistCounts(available=1, busy=2, away=1)
    assert stats.active_conversations == 4
    assert stats.alerts == (RiskAlert("b", 50),)


def test_empty_snapshot() -> None:
    stats = queue_stats([], [], 0, now=0.0)
    assert (stats.waiting, stats.longest_wait_s, stats.by_tag, stats.alerts) == (0, 0, {}, ())
