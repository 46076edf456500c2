"""Cold transfers (PRODUCT.md §9) in the pure engine. chat/ queues a handed-on conversation
as a request with `transfer_of` whose `avoid` holds the specialists barred for its member
and the one who handed it on (chat/store/transfer_start.py). Over random event sequences: it is
never offered back to that specialist, a barred pair is never offered or claimable, and
the harness's own queue-order check (`queue_key`) holds it ahead of every request of its
priority that is not a transfer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from matching.model import Specialist, queue_key
from tests.matching import random_events as ev
from tests.matching.matching_harness import CI_SETTINGS, make_request

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
    st.lists(ev.specialist_st, min_size=1, max_size=5),
    st.sets(st.tuples(st.integers(0, MEMBERS - 1), st.integers(0, 4)), max_size=6),
    st.lists(ev.event, min_size=20, max_size=80),
)
def test_a_transfer_is_never_offered_back_nor_to_a_barred_specialist(
    specialists: list[Specialist], bars: set[tuple[int, int]], events: list[tuple[str, int, int, int]]
) -> None:
    d, sids, barred = ev.barred_world(specialists, bars)
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
                holder = ev.pick(holders, b)
                assert holder is not None
                d.end_conversation(holder)
                tid = f"t{serial}"
                handed_on[tid] = holder
                d.add_request(
                    make_request(
                        tid,
                        d.now,
                        tags=ev.subset(ev.TAGS, b >> 3) or ("grief",),
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
                        tags=ev.subset(ev.TAGS, b >> 3) or ("grief",),
                        language=("en", None)[a % 2],
                        urgent=a % 5 == 0,
                        avoid=mine,
                        member=member,
                    )
                )
        elif kind == "end" and (sid := ev.pick(sids, a)) and d.specialists[sid].active_chats:
            d.end_conversation(sid)
        elif kind == "wait":
            d.advance((1, 5, 10, 20, 31)[a % 5])
        else:
            ev.play_shared(d, kind, a, b, sids)
        ev.check_barred(d, barred, handed_on)
