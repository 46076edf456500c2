"""Cold transfers (PRODUCT.md §9) in the pure engine. chat/ queues a handed-on conversation
as a request with `transfer_of` whose `avoid` holds the specialists barred for its member
and the one who handed it on (chat/store/transfer.py). Over random event sequences: it is
never offered back to that specialist, a barred pair is never offered or claimable, and
the harness's own queue-order check (`queue_key`) holds it ahead of every request of its
priority that is not a transfer."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from matching.model import MatchConfig, Specialist, Status, queue_key
from tests.matching.matching_harness import CI_SETTINGS, Driver, make_request
from tests.matching.test_properties import TAGS, _pick, _subset, event, specialist_st

MEMBERS = 3


def test_a_transfer_goes_ahead_of_its_priority_only() -> None:
    normal = make_request("r1", 0.0)
    transfer = make_request("r2", 50.0, transfer_of="c1")
    urgent = make_request("r3", 90.0, urgent=True)
    assert sorted([normal, transfer, urgent], key=queue_key) == [urgent, transfer, normal]
    urgent_transfer = make_request("r4", 99.0, urgent=True, transfer_of="c2")
    assert sorted([urgent, urgent_transfer, transfer], key=queue_key) == [urgent_transfer, urgent, transfer]


@CI_SETTINGS
@given(
    st.lists(specialist_st, min_size=1, max_size=5),
    st.sets(st.tuples(st.integers(0, MEMBERS - 1), st.integers(0, 4)), max_size=6),
    st.lists(event, min_size=20, max_size=80),
)
def test_a_transfer_is_never_offered_back_nor_to_a_barred_specialist(
    specialists: list[Specialist], bars: set[tuple[int, int]], events: list[tuple[str, int, int, int]]
) -> None:
    d = Driver(config=MatchConfig(offer_timeout_s=5.0, relax_after_s=10.0, prefer_window_s=5.0))
    for i, s in enumerate(specialists):
        d.add_specialist(replace(s, id=f"s{i}", tags=s.tags | {"grief"}, languages=frozenset({"en"})))
    sids = sorted(d.specialists)
    barred = {(f"m{m}", f"s{s}") for m, s in bars if f"s{s}" in d.specialists}
    handed_on: dict[str, str] = {}  # transfer request id -> the specialist who handed it on
    serial = 0
    for kind, a, b, c in events:
        if kind == "add":
            serial += 1
            member = f"m{a % MEMBERS}"
            mine = tuple(sorted(s for m, s in barred if m == member))
            holders = [sid for sid in sids if d.specialists[sid].active_chats]
            if c % 2 == 0 and holders:
                # A holder hands a conversation on: their slot is freed, the request queued.
                holder = _pick(holders, b)
                assert holder is not None
                d.end_conversation(holder)
                tid = f"t{serial}"
                handed_on[tid] = holder
                d.add_request(
                    make_request(
                        tid,
                        d.now,
                        tags=_subset(TAGS, b >> 3) or ("grief",),
                        language="en",
                        urgent=a % 5 == 0,
                        avoid=(*mine, holder),
                        member=member,
                        transfer_of=f"c{serial}",
                    )
                )
            else:
                d.add_request(
                    make_request(
                        f"r{serial}",
                        d.now,
                        tags=_subset(TAGS, b >> 3) or ("grief",),
                        language=("en", None)[a % 2],
                        urgent=a % 5 == 0,
                        avoid=mine,
                        member=member,
                    )
                )
        elif kind == "cancel" and (rid := _pick(sorted(d.requests), a)):
            d.cancel(rid)
        elif kind in ("accept", "decline") and (oid := _pick(sorted(d.offers), a)):
            d.accept(oid) if kind == "accept" else d.decline(oid)
        elif kind == "claim":
            rid, sid = _pick(sorted(d.requests), a), _pick(sids, b)
            if rid and sid and d.may_claim(rid, sid):
                d.claim(rid, sid)
        elif kind == "end" and (sid := _pick(sids, a)) and d.specialists[sid].active_chats:
            d.end_conversation(sid)
        elif kind == "status" and (sid := _pick(sids, a)):
            status = (Status.AVAILABLE, Status.AVAILABLE, Status.AWAY, Status.OFFLINE)[b % 4]
            d.change_specialist(replace(d.specialists[sid], status=status))
        elif kind == "wait":
            d.advance((1, 5, 10, 20, 31)[a % 5])
        elif kind == "reload":
            d.streak.clear()
            d.reload()
        for offer in d.offers.values():
            request = d.requests[offer.request_id]
            assert handed_on.get(request.id) != offer.specialist_id, "a transfer was offered back"
            assert (request.member_id, offer.specialist_id) not in barred, "a barred pair was offered"
        for request in d.requests.values():
            for sid in d.specialists:
                if (request.member_id, sid) in barred or handed_on.get(request.id) == sid:
                    assert not d.may_claim(request.id, sid)
