"""How honest are the waits? A seeded simulation of a busy shift measures the error of
the estimate each member is shown when they join the line against the wait they then
actually have (until a specialist accepts). docs/matching.md quotes the numbers."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest

from matching.engine import Engine
from matching.estimate import ServiceRates, estimated_wait_s
from matching.model import MatchConfig
from tests.matching.matching_harness import make_request, make_specialist

HANDLE_S = 600.0


@dataclass
class SimResult:
    estimates: list[tuple[int, float]] = field(default_factory=list)  # (shown, actual)

    @property
    def mean_abs_error_s(self) -> float:
        return sum(abs(shown - actual) for shown, actual in self.estimates) / len(self.estimates)

    @property
    def mean_wait_s(self) -> float:
        return sum(actual for _, actual in self.estimates) / len(self.estimates)


def simulate(seed: int, hours: float = 6.0, load: float = 0.97, warmup_s: float = 1800.0) -> SimResult:
    """20 specialists (4 also speak Spanish), 2 chats each, 10 % of members asking for
    Spanish, handle times exponential around 10 minutes, 5 % of offers declined, Poisson
    arrivals at ``load`` times capacity, with a half-hour rush at 1.5 times that."""
    rng = random.Random(seed)
    counter = iter(range(10**9))
    engine = Engine(MatchConfig(default_handle_s=HANDLE_S), lambda: f"o{next(counter)}")
    now = 0.0
    specialists = {}
    for i in range(20):
        languages = ("en", "es") if i < 4 else ("en",)
        s = make_specialist(f"s{i}", languages=languages, max_chats=2, idle_since=0.0)
        specialists[s.id] = s
        engine.specialist_changed(s, now)
    capacity_rate = 40 / HANDLE_S
    created: dict[str, float] = {}
    shown: dict[str, int] = {}
    ends: list[tuple[float, str]] = []
    result = SimResult()
    next_arrival = rng.expovariate(capacity_rate * load)
    serial = 0
    end = hours * 3600
    while now < end:
        now += 1.0
        decisions = [engine.tick(now)]
        while ends and ends[0][0] <= now:
            _, sid = heapq.heappop(ends)
            decisions.append(engine.conversation_ended(sid, now))
        while next_arrival <= now:
            serial += 1
            rid = f"r{serial}"
            language = "es" if rng.random() < 0.1 else "en"
            out = engine.request_added(make_request(rid, now, language=language), now)
            created[rid] = now
            shown[rid] = next(u.estimated_wait_s for u in out.queue_updates if u.request_id == rid)
            decisions.append(out)
            rush = 1.5 if 2 * 3600 <= now < 2.5 * 3600 else 1.0
            next_arrival += rng.expovariate(capacity_rate * load * rush)
        while decisions:
            d = decisions.pop()
            for offer in d.offers:
                if rng.random() < 0.05:
                    decisions.append(engine.offer_declined(offer.id, now))
                    continue
                decisions.append(engine.offer_accepted(offer.id, now))
                heapq.heappush(ends, (now + rng.expovariate(1 / HANDLE_S), offer.specialist_id))
                rid = offer.request_id
                if created[rid] >= warmup_s:
                    result.estimates.append((shown[rid], now - created[rid]))
    return result


@pytest.mark.parametrize(("seed", "load"), [(7, 0.9), (2, 0.97), (3, 1.05)])
def test_estimate_error_in_a_busy_shift_is_bounded(seed: int, load: float) -> None:
    result = simulate(seed=seed, load=load)
    assert len(result.estimates) > 1000
    assert result.mean_wait_s > 60  # a real queue, not a shift where everyone walks in
    # Measured: 24 %, 16 % and 17 % of the mean wait (docs/matching.md). The bound is
    # there to catch a wrong method, not noise: the best constant answer (the true mean
    # wait, known only in hindsight) does far worse on the same shifts.
    assert result.mean_abs_error_s < 0.35 * result.mean_wait_s
    hindsight = sum(abs(result.mean_wait_s - actual) for _, actual in result.estimates)
    assert result.mean_abs_error_s < 0.6 * hindsight / len(result.estimates)


def test_fallback_without_history_is_handle_time_over_slots() -> None:
    rates = ServiceRates(window_s=900, default_handle_s=600)
    rates.add_slots(["en", None], 4)
    assert estimated_wait_s(3, rates.rate("en", 0.0), 600) == 450
    assert estimated_wait_s(1, rates.rate("es", 0.0), 600) == 600  # nobody: one slot assumed
    assert estimated_wait_s(0, rates.rate("en", 0.0), 600) == 0


def test_history_replaces_the_prior_and_old_completions_drop_out() -> None:
    rates = ServiceRates(window_s=900, default_handle_s=600)
    rates.add_slots(["en"], 4)
    for t in range(0, 900, 10):
        rates.completed(["en"], float(t))
    assert 8 <= 1 / rates.rate("en", 900.0) <= 12
    assert 1 / rates.rate("en", 5000.0) > 100  # a quiet hour later: back towards the prior


def test_shown_waits_round_up_to_a_step_that_suits_their_size() -> None:
    from matching.estimate import shown_wait_s

    assert [shown_wait_s(s) for s in (0, 1, 5, 6, 59)] == [0, 5, 5, 10, 60]
    assert [shown_wait_s(s) for s in (60, 61, 599)] == [60, 90, 600]
    assert [shown_wait_s(s) for s in (600, 601, 3599)] == [600, 660, 3600]
