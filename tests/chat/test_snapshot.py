"""chat/snapshot.py: stored rows as the engine sees them."""

from __future__ import annotations

from dataclasses import replace
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
    r = snapshot.as_request(request(priority="urgent", prefer_specialist="s1", avoid=["s2"], state="offered"))
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


def request(**changes: object) -> Request:
    fields: dict[str, object] = dict(
        id=RequestId("r1"),
        member_id=UserId("m1"),
        member_alias="Sam",
        tags=["grief"],
        language=None,
        note=None,
        priority="normal",
        prefer_specialist=None,
        avoid=[],
        state="waiting",
        created_at=NOW,
    )
    return Request(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_snapshot_reuses_the_last_values_only_for_rows_unchanged_since() -> None:
    converted = snapshot.Converted()
    requests, specialists = converted.convert([request()], [profile("available")], {"s1"}, {})
    first_r, first_s = requests["r1"], specialists["s1"]
    # The same rows again (new objects, as each cycle reads them): the very same values.
    requests, specialists = converted.convert([request()], [profile("available")], {"s1"}, {})
    assert requests["r1"] is first_r and specialists["s1"] is first_s
    # Anything that goes into a value changes it: the row, presence, the urgent chats.
    changed = replace(profile("available"), active_chats=2)
    _, specialists = converted.convert([], [changed], {"s1"}, {})
    assert specialists["s1"].active_chats == 2
    _, specialists = converted.convert([], [changed], set(), {})
    assert specialists["s1"].status is Status.OFFLINE
    _, specialists = converted.convert([], [changed], set(), {"s1": 1})
    assert specialists["s1"].urgent_chats == 1
    requests, _ = converted.convert([request(avoid=["s2"])], [], set(), {})
    assert requests["r1"].avoid == frozenset({"s2"}) and requests["r1"] == snapshot.as_request(
        request(avoid=["s2"])
    )
    # Rows gone are forgotten: a row that comes back is converted afresh.
    converted.convert([], [], set(), {})
    requests, _ = converted.convert([request()], [], set(), {})
    assert requests["r1"] is not first_r and requests["r1"] == first_r
