"""chat/snapshot.py: stored rows as the engine sees them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chat import snapshot
from chat.store.profiles import Profile
from chat.store.queue import Offer, Request
from matching.model import Priority, Status
from protocol.ids import OfferId, RequestId, UserId

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def profile(status: str) -> Profile:
    return Profile(
        id="s1",
        name="Ana",
        tags=["grief"],
        languages=["en", "es"],
        max_chats=3,
        status=status,
        active_chats=1,
        missed_offers=2,
        idle_since=NOW,
    )


def test_a_specialist_is_offline_unless_presence_says_otherwise() -> None:
    assert snapshot.as_specialist(profile("available"), online=set()).status is Status.OFFLINE
    assert snapshot.as_specialist(profile("available"), online={"s1"}).status is Status.AVAILABLE
    assert snapshot.as_specialist(profile("away"), online={"s1"}).status is Status.AWAY


def test_the_stored_streak_and_the_rest_of_the_profile_reach_the_engine() -> None:
    s = snapshot.as_specialist(profile("available"), online={"s1"})
    assert (s.tags, s.languages, s.max_chats, s.active_chats) == (
        frozenset({"grief"}),
        frozenset({"en", "es"}),
        3,
        1,
    )
    assert (s.idle_since, s.missed_offers) == (NOW.timestamp(), 2)


def test_requests_and_offers_in_epoch_seconds() -> None:
    r = snapshot.as_request(
        Request(
            id=RequestId("r1"),
            member_id=UserId("m1"),
            member_alias="Sam",
            tags=["grief"],
            language=None,
            note=None,
            priority="urgent",
            prefer_specialist="s1",
            avoid=["s2"],
            state="offered",
            created_at=NOW,
        )
    )
    assert (r.priority, r.created_at, r.avoid, r.prefer_specialist) == (
        Priority.URGENT,
        NOW.timestamp(),
        frozenset({"s2"}),
        "s1",
    )
    o = snapshot.as_offer(
        Offer(OfferId("o1"), RequestId("r1"), UserId("s1"), "pending", NOW, NOW + timedelta(seconds=30))
    )
    assert (o.created_at, o.expires_at) == (NOW.timestamp(), NOW.timestamp() + 30)
