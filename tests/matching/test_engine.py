"""Targeted engine behaviour with a controllable clock (the driver checks §7 invariants
after every step as well)."""

from __future__ import annotations

from dataclasses import replace

from matching.decisions import QueueEstimate
from matching.engine import Bucket, Engine, Key
from matching.model import MatchConfig, Status
from tests.matching.matching_harness import Driver, make_request, make_specialist


def only_offer(d: Driver) -> tuple[str, str]:
    (offer,) = d.log[-1].offers
    return offer.request_id, offer.specialist_id


def test_request_is_offered_to_an_eligible_specialist_with_expiry_after_timeout() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1"))
    out = d.add_request(make_request("r1", d.now))
    (offer,) = out.offers
    assert (offer.request_id, offer.specialist_id) == ("r1", "s1")
    assert offer.expires_at == d.now + 30
    assert out.queue_updates == (QueueEstimate("r1", 1, 0),)


def test_offer_expiry_moves_to_next_candidate_and_never_back() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1", idle_since=1))
    d.add_specialist(make_specialist("s2", idle_since=2))
    d.add_request(make_request("r1", d.now))
    assert only_offer(d) == ("r1", "s1")  # longest idle first
    assert not d.advance(29.9).expired
    out = d.advance(0.1)
    assert [o.specialist_id for o in out.expired] == ["s1"]
    assert [(o.request_id, o.specialist_id) for o in out.offers] == [("r1", "s2")]
    assert d.engine.requests["r1"].avoid == {"s1"}
    out = d.advance(30)
    assert [o.specialist_id for o in out.expired] == ["s2"]
    assert out.offers == ()  # both let it expire: nobody left to offer it to
    d.add_specialist(make_specialist("s3"))
    assert only_offer(d) == ("r1", "s3")


def test_decline_moves_to_next_candidate_and_member_keeps_place() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1", idle_since=1))
    d.add_request(make_request("r1", d.now))
    d.advance(1)
    d.add_request(make_request("r2", d.now))
    assert d.engine.queue_position("r1", d.now) == QueueEstimate("r1", 1, 0)
    (offer,) = d.engine.offers.values()
    out = d.decline(offer.id)
    assert out.offers[0].request_id == "r2"  # s1 may not have r1 again; r2 is next for them
    d.add_specialist(make_specialist("s2"))
    assert only_offer(d) == ("r1", "s2")
    estimate = d.engine.queue_position("r1", d.now)
    assert estimate is not None and estimate.position == 1
    assert d.engine.requests["r1"].created_at == 1000.0


def test_tags_required_until_relax_after_then_anyone_speaking_the_language() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1", tags=("alcohol",)))
    d.add_specialist(make_specialist("s2", tags=(), languages=("es",)))
    out = d.add_request(make_request("r1", d.now, tags=("grief",)))
    assert out.offers == ()
    assert out.queue_updates[0].estimated_wait_s == 60  # offered once tags relax
    assert d.advance(59.9).offers == ()
    out = d.advance(0.1)
    assert [(o.request_id, o.specialist_id) for o in out.offers] == [("r1", "s1")]


def test_language_is_never_relaxed() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1", languages=("en",)))
    d.add_request(make_request("r1", d.now, language="es"))
    assert d.advance(3600).offers == ()


def test_best_first_most_tags_then_fewest_chats_then_longest_idle() -> None:
    d = Driver()
    d.add_specialist(make_specialist("one-tag", tags=("grief",), max_chats=3, idle_since=0))
    d.add_specialist(
        make_specialist("two-busy", tags=("grief", "alcohol"), max_chats=3, active=2, idle_since=5)
    )
    d.add_specialist(
        make_specialist("two-free-new", tags=("grief", "alcohol"), max_chats=3, active=1, idle_since=9)
    )
    d.add_specialist(
        make_specialist("two-free-old", tags=("grief", "alcohol"), max_chats=3, active=1, idle_since=1)
    )
    d.add_request(make_request("r1", d.now, tags=("grief", "alcohol")))
    assert only_offer(d) == ("r1", "two-free-old")
    d.add_request(make_request("r2", d.now, tags=("grief", "alcohol")))
    # two-free-old now holds a pending offer, which counts as a chat (load 2).
    assert only_offer(d) == ("r2", "two-free-new")
    d.add_request(make_request("r3", d.now, tags=("grief", "alcohol")))
    # All three two-tag specialists at load 2: longest idle wins.
    assert only_offer(d) == ("r3", "two-free-old")
    d.add_request(make_request("r4", d.now, tags=("grief", "alcohol")))
    assert only_offer(d) == ("r4", "two-busy")
    d.add_request(make_request("r5", d.now, tags=("grief", "alcohol")))
    assert only_offer(d) == ("r5", "two-free-new")  # more shared tags beat fewer chats
    d.add_request(make_request("r6", d.now, tags=("grief", "alcohol")))
    assert only_offer(d) == ("r6", "one-tag")  # the two-tag ones are full


def test_urgent_goes_first_and_prefers_crisis_specialists() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1", tags=("alcohol",), max_chats=1, active=1, idle_since=0))
    d.add_specialist(make_specialist("crisis", tags=("crisis",), max_chats=1, active=1, idle_since=9))
    d.add_request(make_request("normal", d.now, tags=("alcohol",)))
    d.advance(5)
    out = d.add_request(make_request("urgent", d.now, tags=("alcohol",), urgent=True))
    assert out.queue_updates[0].position == 1
    d.end_conversation("s1")
    assert only_offer(d) == ("urgent", "s1")  # first in line, though it came later
    d.cancel("urgent")
    assert only_offer(d) == ("normal", "s1")


def test_urgent_request_offered_to_crisis_specialist_when_both_free() -> None:
    d = Driver()
    d.add_specialist(make_specialist("plain", tags=(), idle_since=0))
    d.add_specialist(make_specialist("crisis", tags=("crisis",), idle_since=9))
    d.add_request(make_request("u", d.now, urgent=True))
    assert only_offer(d) == ("u", "crisis")
    d.add_request(make_request("n", d.now))
    assert only_offer(d) == ("n", "plain")


def test_urgent_tagged_request_may_go_to_a_crisis_specialist_without_the_tag() -> None:
    d = Driver()
    d.add_specialist(make_specialist("crisis", tags=("crisis",)))
    d.add_request(make_request("u", d.now, tags=("opioids",), urgent=True))
    assert only_offer(d) == ("u", "crisis")


def test_preferred_specialist_gets_it_if_available_within_window() -> None:
    d = Driver()
    d.add_specialist(make_specialist("other"))
    d.add_specialist(make_specialist("pref", status=Status.AWAY))
    out = d.add_request(make_request("r1", d.now, prefer="pref"))
    assert out.offers == () and out.preference_fallbacks == ()
    d.advance(10)
    d.change_specialist(replace(d.specialists["pref"], status=Status.AVAILABLE))
    assert only_offer(d) == ("r1", "pref")
    out = d.advance(15)  # window ends while the preferred specialist holds the offer
    assert out.preference_fallbacks == () and out.offers == ()


def test_preference_falls_back_after_window_and_member_is_told() -> None:
    d = Driver()
    d.add_specialist(make_specialist("other"))
    d.add_specialist(make_specialist("pref", status=Status.OFFLINE))
    d.add_request(make_request("r1", d.now, prefer="pref"))
    assert d.advance(19.9).offers == ()
    out = d.advance(0.1)
    assert out.preference_fallbacks == ("r1",)
    assert [(o.request_id, o.specialist_id) for o in out.offers] == [("r1", "other")]
    assert d.advance(60).preference_fallbacks == ()  # told once


def test_preferred_specialist_declining_releases_the_request_at_once() -> None:
    d = Driver()
    d.add_specialist(make_specialist("other"))
    d.add_specialist(make_specialist("pref"))
    d.add_request(make_request("r1", d.now, prefer="pref"))
    (offer,) = d.log[-1].offers
    assert offer.specialist_id == "pref"
    out = d.decline(offer.id)
    assert out.preference_fallbacks == ("r1",)
    assert [(o.request_id, o.specialist_id) for o in out.offers] == [("r1", "other")]


def test_urgent_request_does_not_wait_for_preferred_specialist() -> None:
    d = Driver()
    d.add_specialist(make_specialist("other"))
    d.add_specialist(make_specialist("pref", status=Status.AWAY))
    out = d.add_request(make_request("r1", d.now, prefer="pref", urgent=True))
    assert [o.specialist_id for o in out.offers] == ["other"]
    assert out.preference_fallbacks == ("r1",)


def test_three_missed_offers_in_a_row_set_away_and_a_reply_resets_the_count() -> None:
    d = Driver(config=MatchConfig(offer_timeout_s=30))
    d.add_specialist(make_specialist("s1"))
    for i in range(2):
        d.add_request(make_request(f"r{i}", d.now))
        assert d.advance(30).expired
    d.add_request(make_request("r2", d.now))
    d.decline(d.log[-1].offers[0].id)  # a reply: the streak starts again
    for i in range(3, 5):
        d.add_request(make_request(f"r{i}", d.now))
        out = d.advance(30)
        assert out.set_away == ()
    d.add_request(make_request("r5", d.now))
    out = d.advance(30)
    assert out.set_away == ("s1",)
    assert d.engine.specialists["s1"].status is Status.AWAY
    d.add_request(make_request("r6", d.now))
    assert d.log[-1].offers == ()


def test_the_stored_streak_of_misses_outlives_a_reload_and_is_taken_up_when_it_moves() -> None:
    # A new leader loads a specialist who already let two offers expire: one more is the third.
    d = Driver(config=MatchConfig(offer_timeout_s=30), check=False)
    d.add_specialist(make_specialist("s1"))
    d.specialists["s1"] = replace(d.specialists["s1"], missed_offers=2)
    d.reload()
    d.add_request(make_request("r0", d.now))
    assert d.advance(30).set_away == ("s1",)
    # The stored streak reset (the specialist came back available): the engine follows it.
    d.change_specialist(replace(d.specialists["s1"], status=Status.AVAILABLE, missed_offers=0))
    for i in range(1, 3):
        d.add_request(make_request(f"r{i}", d.now))
        assert d.advance(30).set_away == ()


def test_going_away_revokes_pending_offers_without_a_strike() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1"))
    d.add_specialist(make_specialist("s2", status=Status.AWAY))
    d.add_request(make_request("r1", d.now))
    (offer,) = d.log[-1].offers
    d.change_specialist(replace(d.specialists["s2"], status=Status.AVAILABLE))
    out = d.change_specialist(replace(d.specialists["s1"], status=Status.AWAY))
    assert out.revoked == (offer,)
    assert [(o.request_id, o.specialist_id) for o in out.offers] == [("r1", "s2")]
    assert "s1" not in d.engine.requests["r1"].avoid


def test_capacity_counts_pending_offers_and_a_cut_revokes_the_newest() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1", max_chats=2))
    d.add_request(make_request("r1", d.now))
    d.add_request(make_request("r2", d.now + 1))
    d.add_request(make_request("r3", d.now + 2))
    assert len(d.engine.offers) == 2
    out = d.change_specialist(replace(d.specialists["s1"], max_chats=1))
    assert [o.request_id for o in out.revoked] == ["r2"]


def test_claim_revokes_the_other_holders_offer() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1"))
    d.add_specialist(make_specialist("s2", status=Status.AWAY))
    d.add_request(make_request("r1", d.now))
    (offer,) = d.log[-1].offers
    # Away specialists may pick by hand (the database decides a claim: chat/store/assignment.py).
    out = d.claim("r1", "s2")
    assert out.revoked == (offer,)
    assert d.engine.specialists["s2"].active_chats == 1
    assert d.engine.queue_position("r1", d.now) is None
    d.add_request(make_request("r2", d.now))
    assert only_offer(d) == ("r2", "s1")


def test_claim_by_the_holder_is_an_accept() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1"))
    d.add_request(make_request("r1", d.now))
    out = d.claim("r1", "s1")
    assert out.revoked == ()
    assert d.engine.offers == {}


def test_unknown_and_stale_events_are_ignored() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1"))
    d.add_request(make_request("r1", d.now))
    (offer,) = d.log[-1].offers
    d.accept(offer.id)
    assert not d.engine.offer_accepted(offer.id, d.now)
    assert not d.engine.offer_declined(offer.id, d.now)
    assert not d.engine.request_removed("r1", d.now)
    assert not d.engine.conversation_ended("nobody", d.now)
    d.add_request(make_request("r2", d.now))
    assert not d.engine.request_added(make_request("r2", d.now), d.now)


def test_load_rebuilds_from_snapshot_and_revokes_stale_offers() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1"))
    d.add_specialist(make_specialist("s2"))
    d.add_request(make_request("r1", d.now))
    d.add_request(make_request("r2", d.now + 1))
    offers = list(d.engine.offers.values())
    assert len(offers) == 2
    stale = replace(offers[0], id="ghost", request_id="gone")
    d.advance(10)
    fresh = d.engine.load(d.requests.values(), d.specialists.values(), [*offers, stale], d.now)
    assert fresh.revoked == (stale,)
    assert fresh.offers == ()
    assert set(d.engine.offers) == {o.id for o in offers}
    out = d.advance(20)
    assert len(out.expired) == 2


def test_queue_updates_report_changes_only_and_positions_shift_on_tick() -> None:
    d = Driver()
    for i in range(3):
        d.add_request(make_request(f"r{i}", d.now + i))
    assert d.engine.queue_position("r2", d.now) is not None
    d.cancel("r0")
    out = d.advance(1)
    positions = {u.request_id: u.position for u in out.queue_updates}
    assert positions == {"r1": 1, "r2": 2}
    assert d.advance(1).queue_updates == ()  # nothing changed, nothing sent


def test_sweep_covers_a_long_queue_in_slices() -> None:
    d = Driver(config=MatchConfig(queue_refresh_batch=10))
    for i in range(25):
        d.add_request(make_request(f"r{i:02}", d.now + i))
    d.cancel("r00")
    seen: set[str] = set()
    for _ in range(3):
        seen.update(u.request_id for u in d.advance(1).queue_updates)
    assert seen == {f"r{i:02}" for i in range(1, 25)}


def test_estimates_follow_service_rate() -> None:
    d = Driver(config=MatchConfig(default_handle_s=600))
    d.add_specialist(make_specialist("s1", max_chats=2, active=2))
    out = d.add_request(make_request("r00", d.now))
    # No history: two slots, each finishing a chat every 600 s -> one per 300 s.
    assert out.queue_updates == (QueueEstimate("r00", 1, 300),)
    for i in range(1, 40):
        d.add_request(make_request(f"r{i:02}", d.now))
    for _ in range(30):  # then a chat ends every 30 s, and its slot is refilled at once
        d.advance(30)
        d.end_conversation("s1")
        d.accept(d.log[-1].offers[0].id)
    estimate = d.engine.queue_position("r39", d.now)
    assert estimate is not None and estimate.position == 10
    assert 10 * 30 * 0.8 <= estimate.estimated_wait_s <= 10 * 30 * 1.25


def test_urgent_load_cap_holds_urgent_offers_but_not_claims_or_normal_offers() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1", max_chats=3))
    d.add_request(make_request("r1", d.now, urgent=True))
    (offer,) = d.engine.offers.values()
    d.accept(offer.id)
    assert d.engine.specialists["s1"].urgent_chats == 1
    out = d.add_request(make_request("r2", d.now, urgent=True))
    assert out.offers == ()  # at the cap (1): no second urgent offer
    d.add_request(make_request("r3", d.now))
    assert only_offer(d) == ("r3", "s1")  # normal requests still come
    d.add_specialist(make_specialist("s2"))
    assert only_offer(d) == ("r2", "s2")


def test_urgent_load_cap_frees_when_the_urgent_conversation_ends() -> None:
    d = Driver(config=MatchConfig(max_urgent_per_specialist=2))
    d.add_specialist(make_specialist("s1", max_chats=3))
    for rid in ("r1", "r2", "r3"):
        d.add_request(make_request(rid, d.now, urgent=True))
        if d.engine.offers:
            d.accept(next(iter(d.engine.offers)))
    assert d.engine.specialists["s1"].urgent_chats == 2
    assert "r3" in d.engine.requests and not d.engine.offers
    d.end_conversation("s1", urgent=True)
    assert only_offer(d) == ("r3", "s1")


def test_wrap_up_holds_offers_and_claims_until_it_ends() -> None:
    d = Driver()
    d.add_specialist(make_specialist("s1"))
    d.add_request(make_request("r1", d.now))
    d.accept(next(iter(d.engine.offers)))
    d.end_conversation("s1", wrap_up_s=120)
    assert d.add_request(make_request("r2", d.now)).offers == ()
    assert d.advance(119).offers == ()
    assert [o.request_id for o in d.advance(1).offers] == ["r2"]


class _CountingEngine(Engine):
    """Counts the requests `_settle` looks at on the touched specialists' side."""

    looked = 0

    def _may_take(self, bucket: Bucket, key: Key, specialist_ids: dict[str, None]) -> bool:
        self.looked += 1
        return super()._may_take(bucket, key, specialist_ids)


def test_a_freed_slot_with_a_long_line_looks_at_a_few_requests_not_the_whole_line() -> None:
    """Issue 20: a slot freed with thousands waiting makes one offer and stops; walking on
    through the line once the specialist was full again made each such event O(waiting)
    (tens of milliseconds with 10,000 waiting, in bench/matching_bench.py)."""
    now = 1000.0
    engine = _CountingEngine(MatchConfig(), new_id=iter(f"o{i}" for i in range(10)).__next__)
    full = make_specialist("s1", tags=("grief",), max_chats=1, active=1)
    line = [make_request(f"r{i:05}", now + i * 0.001, tags=("grief",) if i % 2 else ()) for i in range(3000)]
    engine.load(line, [full], [], now + 5)
    assert not engine.offers
    engine.looked = 0
    decided = engine.specialist_changed(replace(full, active_chats=0), now + 6)
    assert [(o.request_id, o.specialist_id) for o in decided.offers] == [("r00000", "s1")]
    assert engine.looked <= 5, f"looked at {engine.looked} requests"
