"""chat/stats.py `queue_stats`: the one definition of the supervisor's numbers (docs/protocol.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chat.stats import queue_stats
from chat.store.profiles import Profile
from chat.store.queue import Request
from protocol.ids import RequestId, UserId

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def request(
    rid: str, waited_s: float, *, tags: tuple[str, ...] = (), urgent: bool = False, state: str = "waiting"
) -> Request:
    return Request(
        id=RequestId(rid),
        member_id=UserId(f"m-{rid}"),
        member_alias="Sam",
        tags=list(tags),
        language=None,
        note=None,
        priority="urgent" if urgent else "normal",
        prefer_specialist=None,
        avoid=[],
        state=state,
        created_at=NOW - timedelta(seconds=waited_s),
    )


def profile(sid: str, *, status: str = "available", active: int = 0, max_chats: int = 2) -> Profile:
    return Profile(
        id=sid,
        name=sid,
        tags=[],
        languages=["en"],
        max_chats=max_chats,
        status=status,
        active_chats=active,
        missed_offers=0,
        idle_since=NOW,
    )


def test_open_requests_count_by_tag_with_untagged_under_none() -> None:
    requests = [
        request("a", 100.5, tags=("grief", "alcohol")),
        request("b", 50, tags=("grief",), state="offered"),
        request("c", 10),
        request("gone", 900, state="assigned"),  # not in line: not counted anywhere
    ]
    stats = queue_stats(requests, [], set(), 4, NOW, [])
    assert (stats.waiting, stats.longest_wait_s, stats.active_conversations) == (3, 100, 4)
    assert {tag: (load.waiting, load.longest_wait_s) for tag, load in stats.by_tag.items()} == {
        "(none)": (1, 10),
        "alcohol": (1, 100),
        "grief": (2, 100),
    }
    assert list(stats.by_tag) == sorted(stats.by_tag)


def test_specialists_online_only_and_busy_whatever_their_status() -> None:
    specialists = [
        profile("free", active=1),
        profile("full", active=2),
        profile("away-full", status="away", active=2),
        profile("away", status="away"),
        profile("offline", active=0),
    ]
    online = {"free", "full", "away-full", "away"}
    counts = queue_stats([], specialists, online, 0, NOW, []).specialists
    assert (counts.available, counts.busy, counts.away) == (1, 2, 1)


def test_an_empty_snapshot() -> None:
    stats = queue_stats([], [], set(), 0, NOW, [])
    assert (stats.waiting, stats.longest_wait_s, stats.by_tag, stats.alerts) == (0, 0, {}, [])
