"""Random event sequences against the §7 invariants (checked by the driver after every
event): never two pending offers for one request, never an avoided specialist, never
over capacity, never the wrong language, queue order (urgent first) and no starvation."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from matching.model import MatchConfig, Specialist
from tests.matching.matching_harness import CI_SETTINGS, Driver, make_request
from tests.matching.random_events import (
    LANGUAGES,
    SHORT_TIMEOUTS,
    TAGS,
    event,
    pick,
    play_shared,
    specialist_st,
    subset,
)


def run(
    specialists: list[Specialist], events: list[tuple[str, int, int, int]], config: MatchConfig
) -> Driver:
    d = Driver(config=config)
    for i, s in enumerate(specialists):
        d.add_specialist(replace(s, id=f"s{i}"))
    sids = sorted(d.specialists)
    serial = 0
    for kind, a, b, c in events:
        if kind == "add":
            serial += 1
            language = (*LANGUAGES, None)[a % 4]
            prefer = pick(sids, b) if c % 5 == 0 else None
            avoid = (pick(sids, c),) if c % 7 == 0 else ()
            r = make_request(
                f"r{serial}",
                d.now,
                tags=subset(TAGS, b >> 3),
                language=language,
                urgent=a % 6 == 0,
                prefer=prefer,
                avoid=tuple(x for x in avoid if x),
            )
            d.add_request(r)
        elif kind == "end" and (sid := pick(sids, a)) and d.specialists[sid].active_chats:
            # Sometimes an urgent one, sometimes followed by a wrap-up (PRODUCT.md §8).
            d.end_conversation(sid, urgent=b % 2 == 0, wrap_up_s=(0.0, 0.0, 5.0, 30.0)[c % 4])
        elif kind == "profile" and (sid := pick(sids, a)):
            s = d.specialists[sid]
            languages = subset(LANGUAGES, b) or ("en",)
            d.change_specialist(replace(s, tags=frozenset(subset(TAGS, c)), languages=frozenset(languages)))
        elif kind == "capacity" and (sid := pick(sids, a)):
            d.change_specialist(replace(d.specialists[sid], max_chats=1 + b % 3))
        elif kind == "wait":
            d.advance((1, 5, 10, 19, 20, 31, 61)[a % 7] + (b % 3) * 0.5)
        else:
            play_shared(d, kind, a, b, sids)
    return d


@CI_SETTINGS
@given(
    st.lists(specialist_st, min_size=1, max_size=6),
    st.lists(event, min_size=20, max_size=80),
)
def test_invariants_hold_over_random_event_sequences(
    specialists: list[Specialist], events: list[tuple[str, int, int, int]]
) -> None:
    run(specialists, events, MatchConfig())


@CI_SETTINGS
@given(
    st.lists(specialist_st, min_size=1, max_size=4),
    st.lists(event, min_size=20, max_size=80),
)
def test_invariants_hold_with_short_timeouts(
    specialists: list[Specialist], events: list[tuple[str, int, int, int]]
) -> None:
    run(specialists, events, SHORT_TIMEOUTS)
