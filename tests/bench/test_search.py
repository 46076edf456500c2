"""bench/load.py's rate search: where it steps, against a target whose limit is known."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bench import load
from bench.__main__ import FULL
from bench.load import LoadPlan

LADDER = (4000, 5000, 6000, 8000, 10000, 12000, 16000, 20000)


def _plan() -> LoadPlan:
    return replace(FULL.load, steps=LADDER, max_side_rate=20.0)


class Target:
    connected = 4000


@pytest.mark.parametrize(
    ("limit", "best", "fail", "tried"),
    [
        # Coarse up to 6,000 (fails); fine from 5,000 in quarters of the 1,000 gap.
        (5600, 5500, 5750, [4000, 5000, 6000, 5250, 5500, 5750]),
        # A 4,000 gap (16,000 → 20,000): fine steps of 1,000, every one held.
        (19500, 19000, 20000, [*LADDER, 17000, 18000, 19000]),
        # The first step misses: halve down until one holds, then climb fine to the miss.
        (2600, 2500, 3000, [4000, 2000, 2500, 3000]),
        # Never misses: limited by the ladder, no fine climb.
        (10**9, 20000, None, list(LADDER)),
    ],
)
def test_the_search_climbs_coarse_then_fine_and_stops_at_the_first_miss(
    monkeypatch: pytest.MonkeyPatch, limit: int, best: int, fail: int | None, tried: list[int]
) -> None:
    offered: list[int] = []

    def step(target: Any, side_rate: float, plan: LoadPlan) -> dict[str, Any]:
        rate = round(side_rate * target.connected)
        offered.append(rate)
        return {"offered_msgs_s": rate, "passes_slo": rate <= limit}

    monkeypatch.setattr(load, "_step_with_retry", step)
    result = load.search(Target(), _plan())  # type: ignore[arg-type]
    assert offered == tried
    assert (result["highest_passing_msgs_s"], result["first_failing_msgs_s"]) == (best, fail)
    assert result["limited_by_load_shape"] is (fail is None)
    # Nothing above a rate that missed is ever measured: no step is recovery from overload
    # at a higher rate than the one that broke.
    misses = [r for r in offered if r > limit]
    assert len(misses) <= 2


def test_rates_above_the_flood_guard_are_not_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    offered: list[int] = []

    def step(target: Any, side_rate: float, plan: LoadPlan) -> dict[str, Any]:
        offered.append(round(side_rate * target.connected))
        return {"passes_slo": True}

    monkeypatch.setattr(load, "_step_with_retry", step)
    result = load.search(Target(), replace(_plan(), max_side_rate=2.5))  # type: ignore[arg-type]
    assert offered == [4000, 5000, 6000, 8000, 10000]
    assert result["limited_by_load_shape"] is True


def test_a_rung_already_measured_by_the_goal_load_is_not_run_again(monkeypatch: pytest.MonkeyPatch) -> None:
    offered: list[int] = []

    def step(target: Any, side_rate: float, plan: LoadPlan) -> dict[str, Any]:
        rate = round(side_rate * target.connected)
        offered.append(rate)
        return {"offered_msgs_s": rate, "passes_slo": rate <= 5000}

    monkeypatch.setattr(load, "_step_with_retry", step)
    goal = {"offered_msgs_s": 4000, "passes_slo": True}
    result = load.search(Target(), _plan(), known={4000: goal})  # type: ignore[arg-type]
    assert offered == [5000, 6000, 5250]
    assert result["steps"][0]["reused"] == "goal load"
    assert result["highest_passing_msgs_s"] == 5000
