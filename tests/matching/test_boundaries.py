"""Blocks and reports (PRODUCT.md §9) in the pure engine. chat/ gives a request the
specialists barred for its member as `avoid` (chat/store/boundaries.py BARRED_FOR): here,
over random event sequences, a barred pair is never offered and never claimable, even
when the member asks for that very specialist (`prefer_specialist`, a past peer)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from matching.model import Specialist
from tests.matching import random_events as ev
from tests.matching.matching_harness import CI_SETTINGS, make_request

MEMBERS = 3


@CI_SETTINGS
@given(
    st.lists(ev.specialist_st, min_size=1, max_size=5),
    st.sets(st.tuples(st.integers(0, MEMBERS - 1), st.integers(0, 4)), max_size=8),
    st.lists(ev.event, min_size=20, max_size=80),
)
def test_a_barred_pair_is_never_offered_and_never_claimable(
    specialists: list[Specialist], bars: set[tuple[int, int]], events: list[tuple[str, int, int, int]]
) -> None:
    d, sids, barred = ev.barred_world(specialists, bars)
    serial = 0
    for kind, a, b, c in events:
        if kind == "add":
            serial += 1
            member = f"m{a % MEMBERS}"
            # Often the member asks for a barred specialist by name: the bar still wins.
            mine = sorted(s for m, s in barred if m == member)
            prefer = ev.pick(mine, b) if mine and c % 2 == 0 else ev.pick(sids, b)
            d.add_request(
                make_request(
                    f"r{serial}",
                    d.now,
                    tags=ev.subset(ev.TAGS, b >> 3) or ("grief",),
                    language=("en", None)[a % 2],
                    urgent=a % 5 == 0,
                    prefer=prefer,
                    avoid=tuple(mine),
                    member=member,
                )
            )
        elif kind == "end" and (sid := ev.pick(sids, a)) and d.specialists[sid].active_chats:
            d.end_conversation(sid)
        elif kind == "wait":
            d.advance((1, 5, 10, 20, 31)[a % 5])
        else:
            ev.play_shared(d, kind, a, b, sids)
        ev.check_barred(d, barred)
