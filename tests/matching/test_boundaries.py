"""Blocks and reports (PRODUCT.md §9) in the pure engine. chat/ gives a request the
specialists barred for its member as `avoid` (chat/store/boundaries.py BARRED_FOR): here,
over random event sequences, a barred pair is never offered and never claimable, even
when the member asks for that very specialist (`prefer_specialist`, a past peer)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from matching.model import MatchConfig, Specialist, Status
from tests.matching.matching_harness import CI_SETTINGS, Driver, make_request
from tests.matching.test_properties import TAGS, _pick, _subset, event, specialist_st

MEMBERS = 3


def _check(d: Driver, barred: set[tuple[str, str]]) -> None:
    for offer in d.offers.values():
        request = d.requests[offer.request_id]
        assert (request.member_id, offer.specialist_id) not in barred, "a barred pair was offered"
    for request in d.requests.values():
        for sid in d.specialists:
            if (request.member_id, sid) in barred:
                assert not d.may_claim(request.id, sid), "a barred pair was claimable"


@CI_SETTINGS
@given(
    st.lists(specialist_st, min_size=1, max_size=5),
    st.sets(st.tuples(st.integers(0, MEMBERS - 1), st.integers(0, 4)), max_size=8),
    st.lists(event, min_size=20, max_size=80),
)
def test_a_barred_pair_is_never_offered_and_never_claimable(
    specialists: list[Specialist], bars: set[tuple[int, int]], events: list[tuple[str, int, int, int]]
) -> None:
    d = Driver(config=MatchConfig(offer_timeout_s=5.0, relax_after_s=10.0, prefer_window_s=5.0))
    for i, s in enumerate(specialists):
        d.add_specialist(replace(s, id=f"s{i}", tags=s.tags | {"grief"}, languages=frozenset({"en"})))
    sids = sorted(d.specialists)
    barred = {(f"m{m}", f"s{s}") for m, s in bars if f"s{s}" in d.specialists}
    serial = 0
    for kind, a, b, c in events:
        if kind == "add":
            serial += 1
            member = f"m{a % MEMBERS}"
            # Often the member asks for a barred specialist by name: the bar still wins.
            mine = sorted(s for m, s in barred if m == member)
            prefer = _pick(mine, b) if mine and c % 2 == 0 else _pick(sids, b)
            d.add_request(
                make_request(
                    f"r{serial}",
                    d.now,
                    tags=_subset(TAGS, b >> 3) or ("grief",),
                    language=("en", None)[a % 2],
                    urgent=a % 5 == 0,
                    prefer=prefer,
                    avoid=tuple(mine),
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
            # Leader failover: a new engine rebuilt from the "database" (as test_properties does).
            d.streak.clear()
            d.reload()
        _check(d, barred)
