"""bench/stats.py and the summary over runs: the arithmetic behind every figure of issue 20."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from bench import report
from bench.burst import percentile, wait_figures
from bench.infra import Watched
from bench.stats import RateSearch, Times, cpu_per_message_us, over_runs, settled, tree_cpu_seconds

# ---------------------------------------------------------------------------- CPU accounting


def test_a_backend_that_exits_inside_the_window_counts_only_its_time_in_the_window() -> None:
    postmaster = Times(user=1.0, system=0.5)
    short_lived = Times(user=2.0, system=1.0)  # 3 s of CPU before the window
    steady = Times(user=10.0, system=0.0)
    before = tree_cpu_seconds(postmaster, [short_lived, steady])
    # In the window: the short-lived backend uses 0.4 s more, exits and is reaped (its whole
    # life, 3.4 s, lands in the postmaster's children times); the steady one uses 1.0 s.
    reaped = Times(user=1.1, system=0.5, children_user=2.3, children_system=1.1)
    after = tree_cpu_seconds(reaped, [Times(user=11.0, system=0.0)])
    assert after - before == pytest.approx(0.1 + 0.4 + 1.0)


def test_a_missing_root_costs_nothing() -> None:
    assert tree_cpu_seconds(None, [Times(1.0, 1.0)]) == 0.0


BURNERS = """
import subprocess, sys, time
burn = "import time\\nend = time.process_time() + 0.25\\nwhile time.process_time() < end: pass"
time.sleep(0.3)
for _ in range(3):
    subprocess.run([sys.executable, "-c", burn], check=True)
time.sleep(0.5)
"""


def test_a_watched_tree_counts_children_that_came_and_went_between_readings() -> None:
    parent = subprocess.Popen([sys.executable, "-c", BURNERS])
    try:
        tree = Watched("postgres", parent.pid, children=True)
        alone = Watched("server0", parent.pid)
        time.sleep(0.15)
        tree0, alone0 = tree.cpu_seconds(), alone.cpu_seconds()
        deadline = time.monotonic() + 30
        # Read while the children are gone again (each lives ~0.3 s; the parent sleeps 0.5 s
        # after the last one).
        while time.monotonic() < deadline and parent.poll() is None:
            if tree.cpu_seconds() - tree0 >= 0.7:
                break
            time.sleep(0.05)
        used_tree = tree.cpu_seconds() - tree0
        used_alone = alone.cpu_seconds() - alone0
    finally:
        parent.wait(30)
    # Three children burned 0.25 s each and were reaped: a tree reading keeps their time.
    assert used_tree >= 0.7, used_tree
    assert used_alone < 0.3, "the parent itself mostly waited"


def test_cpu_per_message() -> None:
    assert cpu_per_message_us(1.5, 10_000) == 150.0
    assert cpu_per_message_us(1.5, 0) is None


# ---------------------------------------------------------------------------- settling


def test_settled_needs_consecutive_quiet_readings() -> None:
    assert not settled([90, 80, 10, 10, 10], quiet_pct=25, consecutive=4)
    assert settled([90, 10, 10, 10, 10], quiet_pct=25, consecutive=4)
    assert not settled([10, 10, 10, 30], quiet_pct=25, consecutive=4), "the last reading is busy"
    assert not settled([10, 10], quiet_pct=25, consecutive=4), "too few readings yet"
    assert settled([], quiet_pct=25, consecutive=0)


# ---------------------------------------------------------------------------- the climb


def _climb(search: RateSearch, limit: int) -> list[int]:
    tried = []
    while (rate := search.next()) is not None:
        tried.append(rate)
        search.record(rate, rate <= limit)
    return tried


def test_the_fine_climb_uses_quarters_of_the_gap_in_multiples_of_250() -> None:
    search = RateSearch([1000, 2000, 3000, 6000])
    assert _climb(search, 4200) == [1000, 2000, 3000, 6000, 3750, 4500]
    assert (search.best, search.first_failing) == (3750, 4500)


def test_a_narrow_gap_is_climbed_in_250s() -> None:
    search = RateSearch([1000, 1500])
    assert _climb(search, 1300) == [1000, 1500, 1250]
    assert (search.best, search.first_failing, search.limited_by_ladder) == (1250, 1500, False)


def test_nothing_holds() -> None:
    search = RateSearch([1000])
    assert _climb(search, 0) == [1000, 500, 250], "halved down to the smallest step"
    assert (search.best, search.first_failing) == (None, 250)


# ---------------------------------------------------------------------------- over runs


def test_over_runs_reports_the_median_and_every_run() -> None:
    assert over_runs([3.0, 1.0, 2.0]) == {"median": 2.0, "runs": [3.0, 1.0, 2.0]}
    assert over_runs([3.0, None, 1.0]) == {"median": 2.0, "runs": [3.0, None, 1.0]}
    assert over_runs([None]) == {"median": None, "runs": [None]}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def _run(cpu: float, relay_cpu: float, rate: int, relay_rate: int, errors: int = 0) -> dict[str, Any]:
    def goal(us: float, p99: float) -> dict[str, Any]:
        return {
            "server_cpu_us_per_msg": us,
            "e2e_ms": {"p50": 5.0, "p99": p99},
            "ack_ms": {"p50": 4.0, "p99": p99},
            "machine_busy_pct": 60.0,
            "errors": errors,
            "undelivered": 0,
            "unacked": 0,
        }

    return {
        "peerchat": {
            "goal": goal(cpu, 20.0),
            "search": {"highest_passing_msgs_s": rate},
            "idle": {"server_cpu_pct": 1.0},
        },
        "relay": {
            "goal": goal(relay_cpu, 3.0),
            "search": {"highest_passing_msgs_s": relay_rate},
            "idle": {"server_cpu_pct": 0.0},
        },
        "burst": {"members": 2000, "matched": 2000, "wait_s": {"p50": 1.0, "p99": 3.0}},
        "idle": [
            {"variant": "peerchat-deflate-off", "kib_per_socket": 23.0},
            {"variant": "relay-deflate-off", "kib_per_socket": 12.0},
        ],
        "matching": {"summary": {"tick": {"p99_us": 700.0}, "request_added": {"p99_us": 30.0}}},
    }


def _figure(combined: dict[str, Any], key: str) -> dict[str, Any]:
    return next(row for row in combined["figures"] if row["key"] == key)


def test_the_summary_takes_medians_but_the_rate_ratio_must_hold_in_every_run() -> None:
    runs = [_run(190, 100, 8000, 16000), _run(210, 100, 7000, 16000), _run(180, 100, 9000, 16000)]
    combined = report.combine(runs)
    cpu = _figure(combined, "cpu_ratio")
    assert cpu["runs"] == [1.9, 2.1, 1.8] and cpu["median"] == 1.9 and cpu["pass"] is True
    rate = _figure(combined, "rate_ratio")
    assert rate["runs"] == [0.5, 0.44, 0.56] and rate["median"] == 0.5
    assert rate["pass"] is False, "0.44 in one run: the goal is ≥ 0.5 in every one"
    assert _figure(combined, "e2e_p99_ms")["relay"] == {"median": 3.0, "runs": [3.0, 3.0, 3.0]}
    assert _figure(combined, "idle_kib")["pass"] is True
    assert _figure(combined, "burst_unmatched")["median"] == 0
    table = report.render_summary(combined)
    assert "| … ÷ the relay's, same run | 0.5 | 0.5 / 0.44 / 0.56 |" in table
    assert "**FAIL**" in table and "**pass**" in table


def test_one_run_with_an_error_fails_the_errors_figure() -> None:
    combined = report.combine([_run(100, 100, 1, 1), _run(100, 100, 1, 1, errors=1), _run(100, 100, 1, 1)])
    errors = _figure(combined, "errors")
    assert errors["median"] == 0 and errors["pass"] is False


def test_a_figure_a_run_did_not_measure_is_not_passed() -> None:
    run = _run(100, 100, 1, 1)
    del run["burst"]
    combined = report.combine([run])
    assert _figure(combined, "burst_p99_s")["pass"] is None
    assert _figure(combined, "burst_unmatched")["pass"] is None


def test_a_burst_member_never_matched_counts_as_waiting_the_whole_timeout() -> None:
    matched = [0.5] * 97
    figures = wait_figures(matched, asked=100, timeout_s=45.0)
    # Three of a hundred unmatched: the p99 is the timeout, not the best of the matched.
    assert figures["p99"] == 45.0 and figures["p50"] == 0.5 and figures["max"] == 45.0
    assert wait_figures([0.2, 0.1], asked=2, timeout_s=45.0) == {
        "p50": 0.1,
        "p99": 0.2,
        "max": 0.2,
        "mean": 0.15,
    }
    assert wait_figures([], asked=0, timeout_s=45.0)["p99"] is None


def test_a_failed_run_leaves_its_figures_empty_and_every_run_goals_undecided() -> None:
    combined = report.combine([_run(190, 100, 8000, 16000), {"mode": "full", "error": "RuntimeError: boom"}])
    cpu = _figure(combined, "cpu_ratio")
    assert cpu["runs"] == [1.9, None] and cpu["median"] == 1.9
    assert _figure(combined, "rate_ratio")["pass"] is None, "one run has no ratio: not a pass"
    assert "| 1.9 / - |" in report.render_summary(combined)


def test_a_search_where_nothing_held_is_a_rate_of_zero_and_fails_the_ratio() -> None:
    run = _run(100, 100, 1, 16000)
    run["peerchat"]["search"]["highest_passing_msgs_s"] = None
    rate = _figure(report.combine([run]), "rate_ratio")
    assert rate["runs"] == [0.0] and rate["pass"] is False
