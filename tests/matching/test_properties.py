"""Random event sequences against the §7 invariants (checked by the driver after every
event): never two pending offers for one request, never an avoided specialist, never
over capacity, never the wrong language, queue order (urgent first) and no starvation."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from matching.model import MatchConfig, Specialist, Status
from tests.matching.matching_harness import CI_SETTINGS, Driver, make_request, make_specialist

TAGS = ("alcohol", "grief", "opioids", "crisis", "family")
LANGUAGES = ("en", "es", "fr")
KINDS = (
    "add",
    "add",
    "add",
    "cancel",
    "accept",
    "accept",
    "decline",
    "claim",
    "end",
    "status",
    "profile",
    "capacity",
    "wait",
    "wait",
    "reload",
)

event = st.tuples(st.sampled_from(KINDS), st.integers(0, 2**16), st.integers(0, 2**16), st.integers(0, 2**16))

specialist_st = st.builds(
    lambda i, tags, langs, cap, status: make_specialist(
        f"s{i}", tags=tuple(tags), languages=tuple(langs), max_chats=cap, status=status, idle_since=float(i)
    ),
    st.integers(0, 0),
    st.sets(st.sampled_from(TAGS), max_size=3),
    st.sets(st.sampled_from(LANGUAGES), min_size=1, max_size=2),
    st.integers(1, 3),
    st.sampled_from([Status.AVAILABLE, Status.AVAILABLE, Status.AWAY, Status.OFFLINE]),
)


def _pick(items: list[str], n: int) -> str | None:
    return items[n % len(items)] if items else None


def _subset(universe: tuple[str, ...], bits: int) -> tuple[str, ...]:
    return tuple(x for i, x in enumerate(universe) if bits >> i & 1)


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
            prefer = _pick(sids, b) if c % 5 == 0 else None
            avoid = (_pick(sids, c),) if c % 7 == 0 else ()
            r = make_request(
                f"r{serial}",
                d.now,
                tags=_subset(TAGS, b >> 3),
                language=language,
                urgent=a % 6 == 0,
                prefer=prefer,
                avoid=tuple(x for x in avoid if x),
            )
            d.add_request(r)
        elif kind == "cancel" and (rid := _pick(sorted(d.requests), a)):
            d.cancel(rid)
        elif kind in ("accept", "decline") and (oid := _pick(sorted(d.offers), a)):
            d.accept(oid) if kind == "accept" else d.decline(oid)
        elif kind == "claim":
            rid, sid = _pick(sorted(d.requests), a), _pick(sids, b)
            if rid and sid and d.may_claim(rid, sid):
                d.claim(rid, sid)
        elif kind == "end" and (sid := _pick(sids, a)) and d.specialists[sid].active_chats:
            # Sometimes an urgent one, sometimes followed by a wrap-up (PRODUCT.md §8).
            d.end_conversation(sid, urgent=b % 2 == 0, wrap_up_s=(0.0, 0.0, 5.0, 30.0)[c % 4])
        elif kind == "status" and (sid := _pick(sids, a)):
            status = (Status.AVAILABLE, Status.AVAILABLE, Status.AWAY, Status.OFFLINE)[b % 4]
            d.change_specialist(replace(d.specialists[sid], status=status))
        elif kind == "profile" and (sid := _pick(sids, a)):
            s = d.specialists[sid]
            languages = _subset(LANGUAGES, b) or ("en",)
            d.change_specialist(replace(s, tags=frozenset(_subset(TAGS, c)), languages=frozenset(languages)))
        elif kind == "capacity" and (sid := _pick(sids, a)):
            d.change_specialist(replace(d.specialists[sid], max_chats=1 + b % 3))
        elif kind == "wait":
            d.advance((1, 5, 10, 19, 20, 31, 61)[a % 7] + (b % 3) * 0.5)
        elif kind == "reload":
            # Leader failover: a new engine rebuilt from the driver's "database".
            d.streak.clear()
            d.reload()
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
    # Everything happens within a few ticks: expiries, relaxations and windows overlap.
    config = MatchConfig(offer_timeout_s=5.0, relax_after_s=10.0, prefer_window_s=5.0)
    run(specialists, events, config)
