"""bench/load.py's rate search: where it steps, against a target whose limit is known."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bench import load
from bench.__main__ import FULL
from bench.load import LoadPlan

STEPS = (500, 1000, 2000, 4000, 8000, 12000, 16000)


def _plan() -> LoadPlan:
    return replace(FULL.load, steps=STEPS)


class Target:
    connected = 4000


@pytest.mark.parametrize(
    ("limit", "best", "fail", "tried"),
    [
        # Fails at 12,000: 10,000 fails, 9,000 passes; 8,000-9,000 is within an eighth.
        (9300, 9000, 10000, [500, 1000, 2000, 4000, 8000, 12000, 10000, 9000]),
        # Fails at 16,000: 14,000 and 15,000 pass; a gap of 1,000 is fine enough.
        (15000, 15000, 16000, [*STEPS, 14000, 15000]),
        # A gap of 500 is already within 1,000: no bisection.
        (700, 500, 1000, [500, 1000]),
        # Never fails: limited by the load shape, no bisection.
        (10**9, 16000, None, list(STEPS)),
    ],
)
def test_the_search_narrows_the_gap_to_an_eighth(
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
