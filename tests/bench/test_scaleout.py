"""bench/scaleout.py's reading of a step: the CPU it attributes to web processes, Redis
nodes and PostgreSQL, and the table docs/scaling.md quotes."""

from __future__ import annotations

from typing import Any

from bench.scaleout import COLUMNS, _row, render


def _step() -> dict[str, Any]:
    return {
        "offered_msgs_s": 2000,
        "delivered_msgs_s": 1990,
        "e2e_ms": {"p50": 3.1, "p99": 12.5},
        "passes_slo": True,
        "undelivered": 0,
        "server_cpu_us_per_msg": 240.0,
        "cpu_pct": {
            "server1": 30.0,
            "server0": 31.5,
            "loadgen0": 10.0,
            "loadgen1": 11.0,
            "postgres": 12.0,
            "redis0": 2.5,
            "redis1": 1.5,
            "redis2": 0.25,
        },
        "other_cpu_pct": 40.0,
        "machine_busy_pct": 80.0,
    }


def test_a_step_is_read_into_one_row_per_topology_and_process_count() -> None:
    row = _row("cluster", 2, _step())
    assert row["web_cpu_pct"] == [31.5, 30.0]  # server0, server1: in process order
    assert row["redis_cpu_pct"] == 4.2  # every node of the cluster, summed
    assert row["postgres_cpu_pct"] == 12.0
    assert row["loadgen_cpu_pct"] == 21.0
    assert (row["redis"], row["processes"], row["delivered_msgs_s"]) == ("cluster", 2, 1990)


def test_the_table_has_a_cell_per_column() -> None:
    table = render([_row("single", 1, _step()), _row("cluster", 4, _step())]).splitlines()
    assert len(table) == 4
    for line in table:
        assert line.count("|") == len(COLUMNS) + 1
    assert table[2].startswith("| single | 1 | 2000 | 1990 | 3.1 / 12.5 | yes | 240.0 | 31.5 / 30.0 |")
