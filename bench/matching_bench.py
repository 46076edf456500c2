"""Per-event decision time of the matching engine under overload.

10,000 waiting requests, 1,000 specialists almost all at capacity (the realistic
overload: every freed slot is taken at once), then a mix of events, each timed on its
own with ``time.perf_counter_ns``. Run: ``python -m bench.matching_bench``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from matching.decisions import Decisions
from matching.engine import Engine
from matching.model import MatchConfig, Priority, Request, Specialist, Status

TAGS = (
    "alcohol",
    "opioids",
    "stimulants",
    "cannabis",
    "gambling",
    "grief",
    "anxiety",
    "depression",
    "family",
    "trauma",
    "lgbtq",
    "veterans",
)
# (language, share of members asking for it); None means any language.
T = TypeVar("T")

REQUEST_LANGUAGES: tuple[tuple[str | None, float], ...] = (
    ("en", 0.70),
    ("es", 0.20),
    ("fr", 0.05),
    (None, 0.05),
)
SPECIALIST_LANGUAGES: tuple[tuple[tuple[str, ...], float], ...] = (
    (("en",), 0.70),
    (("en", "es"), 0.15),
    (("es",), 0.10),
    (("en", "fr"), 0.05),
)


def _choose(rng: random.Random, table: tuple[tuple[T, float], ...]) -> T:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def make_request(rng: random.Random, rid: str, created_at: float, specialist_ids: list[str]) -> Request:
    urgent = rng.random() < 0.03
    return Request(
        id=rid,
        member_id=f"m-{rid}",
        tags=frozenset(rng.sample(TAGS, rng.choice((0, 1, 1, 2, 2, 3)))),
        language=_choose(rng, REQUEST_LANGUAGES),
        priority=Priority.URGENT if urgent else Priority.NORMAL,
        created_at=created_at,
        prefer_specialist=rng.choice(specialist_ids) if rng.random() < 0.02 else None,
        avoid=frozenset(rng.sample(specialist_ids, 1)) if rng.random() < 0.05 else frozenset(),
    )


def make_specialist(rng: random.Random, sid: str) -> Specialist:
    tags = rng.sample(TAGS, rng.randint(1, 4))
    if rng.random() < 0.1:
        tags.append("crisis")
    max_chats = rng.randint(2, 4)
    return Specialist(
        id=sid,
        tags=frozenset(tags),
        languages=frozenset(_choose(rng, SPECIALIST_LANGUAGES)),
        max_chats=max_chats,
        active_chats=max_chats,
        status=Status.AVAILABLE if rng.random() < 0.95 else Status.AWAY,
        idle_since=rng.uniform(0, 3600),
    )


def percentile(sorted_ns: list[int], p: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(p / 100 * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1000


def run(
    events: int, seed: int, waiting: int, specialists: int, rate: int, max_s: float = float("inf")
) -> dict[str, list[int]]:
    """Time `events` events (or as many as fit in `max_s` seconds of wall time: a regressed
    engine must not hold a whole `make bench` hostage; what was timed is still reported)."""
    rng = random.Random(seed)
    ids = itertools.count()
    engine = Engine(MatchConfig(), lambda: f"o{next(ids)}")
    now = 10_000.0
    sids = [f"s{i}" for i in range(specialists)]
    staff = [make_specialist(rng, sid) for sid in sids]
    # Waiting for up to 30 minutes: most already relaxed, some still needing tags.
    requests = [make_request(rng, f"r{i}", now - rng.uniform(0, 1800), sids) for i in range(waiting)]
    # Everyone starts at capacity; a few slots are free so load() has offers to make.
    staff = [s if rng.random() < 0.97 else replace(s, active_chats=s.max_chats - 1) for s in staff]
    started = time.perf_counter_ns()
    first = engine.load(requests, staff, [], now)
    load_ms = (time.perf_counter_ns() - started) / 1e6
    print(f"load: {waiting} requests, {specialists} specialists: {load_ms:.1f} ms")
    for offer in first.offers:
        engine.offer_accepted(offer.id, now)
    timings: dict[str, list[int]] = defaultdict(list)
    serial = waiting

    def timed(kind: str, call: Callable[..., Decisions], *args: object) -> Decisions:
        t0 = time.perf_counter_ns()
        decisions = call(*args)
        timings[kind].append(time.perf_counter_ns() - t0)
        return decisions

    # A long-lived leader holds ~10^5 objects; freezing the start-up heap keeps the
    # collector from rescanning it (chat/ can do the same after Engine.load).
    gc.collect()
    gc.freeze()
    deadline = time.monotonic() + max_s
    for n in range(events):
        if n % 100 == 0 and time.monotonic() > deadline:
            print(f"stopped after {n} of {events} events: the {max_s:g} s limit")
            break
        now += 1 / rate
        roll = rng.random()
        if n % rate == 0:  # chat/ ticks once a second
            timed("tick", engine.tick, now)
        elif roll < 0.45:
            serial += 1
            r = make_request(rng, f"r{serial}", now, sids)
            timed("request_added", engine.request_added, r, now)
        elif roll < 0.50 and engine.requests:
            rid = rng.choice(list(itertools.islice(engine.requests, 0, 2000)))
            timed("request_removed", engine.request_removed, rid, now)
        elif roll < 0.90:
            # A conversation ends: the slot frees, the engine offers it on, and the
            # offer is declined (next candidate) or accepted (slot taken again).
            sid = rng.choice(sids)
            s = engine.specialists[sid]
            if s.status is not Status.AVAILABLE or s.active_chats == 0:
                changed = replace(s, status=Status.AVAILABLE)
                timed("specialist_changed", engine.specialist_changed, changed, now)
                continue
            freed = replace(s, active_chats=s.active_chats - 1)
            out = timed("specialist_changed", engine.specialist_changed, freed, now)
            for offer in out.offers:
                if rng.random() < 0.3:
                    out2 = timed("offer_declined", engine.offer_declined, offer.id, now)
                    for o2 in out2.offers:
                        timed("offer_accepted", engine.offer_accepted, o2.id, now)
                else:
                    timed("offer_accepted", engine.offer_accepted, offer.id, now)
        else:
            sid = rng.choice(sids)
            s = engine.specialists[sid]
            status = Status.AWAY if s.status is Status.AVAILABLE else Status.AVAILABLE
            changed = replace(s, status=status)
            timed("specialist_changed", engine.specialist_changed, changed, now)
    print(f"after: {len(engine.requests)} waiting, {len(engine.offers)} offers pending")
    return timings


def report(timings: dict[str, list[int]]) -> None:
    everything = sorted(t for ts in timings.values() for t in ts)
    print(f"{'event':<20}{'count':>8}{'p50 us':>10}{'p99 us':>10}{'max us':>10}")
    for kind in sorted(timings):
        ts = sorted(timings[kind])
        p50, p99, top = percentile(ts, 50), percentile(ts, 99), ts[-1] / 1000
        print(f"{kind:<20}{len(ts):>8}{p50:>10.1f}{p99:>10.1f}{top:>10.1f}")
    print(
        f"{'all':<20}{len(everything):>8}{percentile(everything, 50):>10.1f}"
        f"{percentile(everything, 99):>10.1f}{everything[-1] / 1000:>10.1f}"
    )


def summary(timings: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """p50/p99/max in µs per event kind, and over every event ("all")."""
    out = {}
    everything = [t for kind_times in timings.values() for t in kind_times]
    for kind, ts in [*timings.items(), ("all", everything)]:
        ordered = sorted(ts)
        out[kind] = {
            "count": len(ordered),
            "p50_us": round(percentile(ordered, 50), 1),
            "p99_us": round(percentile(ordered, 99), 1),
            "max_us": round(ordered[-1] / 1000, 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--specialists", type=int, default=1_000)
    # 20 events a second is ~9 new requests a second: about twice what 1,000
    # specialists with 3 chats of 10 minutes can serve, i.e. a queue that keeps growing.
    parser.add_argument("--rate", type=int, default=20, help="events per simulated second")
    parser.add_argument("--json", type=Path, help="also write p50/p99/max per event kind here")
    parser.add_argument("--max-s", type=float, default=float("inf"), help="stop timing after this long")
    args = parser.parse_args()
    print(f"{args.events} events at {args.rate}/s, seed {args.seed}")
    timings = run(args.events, args.seed, args.waiting, args.specialists, args.rate, args.max_s)
    report(timings)
    if args.json:
        done = sum(len(ts) for kind, ts in timings.items())
        args.json.write_text(json.dumps({**summary(timings), "_events_timed": {"count": done}}, indent=1))


if __name__ == "__main__":
    main()
