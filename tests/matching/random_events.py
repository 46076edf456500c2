"""The random event sequences the property tests play (test_properties, test_boundaries,
test_transfers): the vocabulary hypothesis draws from, and the events every one of them
plays alike. Each test plays `add` (and whatever else it varies) itself, then hands the
rest to `play_shared`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from hypothesis import strategies as st

from matching.model import MatchConfig, Specialist, Status
from tests.matching.matching_harness import Driver, make_specialist

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
# Everything happens within a few ticks: expiries, relaxations and windows overlap.
SHORT_TIMEOUTS = MatchConfig(offer_timeout_s=5.0, relax_after_s=10.0, prefer_window_s=5.0)

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


def pick(items: list[str], n: int) -> str | None:
    return items[n % len(items)] if items else None


def subset(universe: tuple[str, ...], bits: int) -> tuple[str, ...]:
    return tuple(x for i, x in enumerate(universe) if bits >> i & 1)


def play_shared(d: Driver, kind: str, a: int, b: int, sids: list[str]) -> None:
    """Play `cancel`, `accept`, `decline`, `claim`, `status` or `reload` (a leader failover:
    a new engine rebuilt from the driver's "database"); any other kind is the caller's, and
    is ignored here."""
    if kind == "cancel" and (rid := pick(sorted(d.requests), a)):
        d.cancel(rid)
    elif kind in ("accept", "decline") and (oid := pick(sorted(d.offers), a)):
        d.accept(oid) if kind == "accept" else d.decline(oid)
    elif kind == "claim":
        rid, sid = pick(sorted(d.requests), a), pick(sids, b)
        if rid and sid and d.may_claim(rid, sid):
            d.claim(rid, sid)
    elif kind == "status" and (sid := pick(sids, a)):
        status = (Status.AVAILABLE, Status.AVAILABLE, Status.AWAY, Status.OFFLINE)[b % 4]
        d.change_specialist(replace(d.specialists[sid], status=status))
    elif kind == "reload":
        d.streak.clear()
        d.reload()


def barred_world(
    specialists: list[Specialist], bars: set[tuple[int, int]]
) -> tuple[Driver, list[str], set[tuple[str, str]]]:
    """A driver with SHORT_TIMEOUTS whose specialists all speak `en` and take `grief` (so a
    bar, not a mismatch, is what keeps a pair apart), their ids, and the barred
    (member, specialist) pairs drawn as (member index, specialist index)."""
    d = Driver(config=SHORT_TIMEOUTS)
    for i, s in enumerate(specialists):
        d.add_specialist(replace(s, id=f"s{i}", tags=s.tags | {"grief"}, languages=frozenset({"en"})))
    barred = {(f"m{m}", f"s{s}") for m, s in bars if f"s{s}" in d.specialists}
    return d, sorted(d.specialists), barred


def check_barred(d: Driver, barred: set[tuple[str, str]], handed_on: Mapping[str, str] | None = None) -> None:
    """No pending offer and no possible claim pairs a barred member and specialist, nor a
    handed-on conversation (`handed_on`: transfer request id -> who handed it on) and the
    specialist who handed it on."""
    handed_on = handed_on or {}
    for offer in d.offers.values():
        request = d.requests[offer.request_id]
        assert handed_on.get(request.id) != offer.specialist_id, "a transfer was offered back"
        assert (request.member_id, offer.specialist_id) not in barred, "a barred pair was offered"
    for request in d.requests.values():
        for sid in d.specialists:
            if (request.member_id, sid) in barred or handed_on.get(request.id) == sid:
                assert not d.may_claim(request.id, sid), "a barred or handed-on pair was claimable"
