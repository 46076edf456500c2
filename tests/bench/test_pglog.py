"""Which of PostgreSQL's own maintenance overlapped a step's measured window, from its log,
and what the rate search does with a step it sank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import pglog
from bench.load import retry_reason
from bench.report import step_notes

LOG = """\
2026-12-05 10:44:35.729 UTC [18088] LOG:  automatic vacuum of table "postgres.public.conversations": x
\tpages: 0 removed, 70 remain, 70 scanned (100.00% of total)
\tsystem usage: CPU: user: 0.01 s, system: 0.00 s, elapsed: 0.05 s
2026-12-05 10:44:36.520 UTC [18088] LOG:  automatic analyze of table "postgres.public.messages"
\tavg read rate: 0.000 MB/s, avg write rate: 0.000 MB/s
\tsystem usage: CPU: user: 0.12 s, system: 0.01 s, elapsed: 0.60 s
2026-12-05 10:44:40.000 UTC [18090] LOG:  connection received: host=127.0.0.1 port=5555
2026-12-05 10:49:11.358 UTC [15080] LOG:  checkpoint complete: wrote 15580 buffers (95.1%); write=0.090 s, \
sync=0.014 s, total=2.109 s; sync files=200
2026-12-05 10:51:00.100 UTC [1] LOG:  automatic aggressive vacuum of table "template1.pg_catalog.pg_class": x
\tsystem usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.01 s
"""


def test_the_log_tells_what_ran_and_when() -> None:
    runs = pglog.read(LOG)
    assert [r.what for r in runs] == [
        "vacuum public.conversations",
        "analyze public.messages",
        "checkpoint",
        "vacuum pg_catalog.pg_class",
    ]
    analyze = runs[1]
    assert round(analyze.end - analyze.start, 2) == 0.60
    assert round(runs[2].end - runs[2].start, 3) == 2.109


def test_a_window_gets_what_overlapped_it(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text(LOG)
    analyze_end = pglog.read(LOG)[1].end
    # A window that began 0.3 s before the analyze ended: it and nothing else.
    seen = pglog.during(log, analyze_end - 0.3, analyze_end + 2.7)
    assert seen == [{"what": "analyze public.messages", "from_s": -0.3, "took_s": 0.6}]
    assert pglog.during(log, analyze_end + 1, analyze_end + 4) == []
    assert pglog.during(None, 0, 1) == [] and pglog.during(tmp_path / "none.log", 0, 1) == []


def _step(**fields: Any) -> dict[str, Any]:
    base = {"passes_slo": False, "errors": 0, "undelivered": 0, "unacked": 0, "other_cpu_pct": 2.0}
    return {**base, **fields}


def test_a_step_missed_during_maintenance_stands_and_one_sunk_by_others_runs_again() -> None:
    maintenance = [{"what": "analyze public.messages", "from_s": 1.2, "took_s": 0.6}]
    assert retry_reason(_step(pg_maintenance=maintenance)) is None, "the service's own work is no excuse"
    assert retry_reason(_step(passes_slo=True, pg_maintenance=maintenance)) is None
    assert retry_reason(_step(pg_maintenance=[])) is None, "a miss with nothing to blame stands"
    assert retry_reason(_step(other_cpu_pct=45.0)) == "other processes used 45.0% of a core"
    assert retry_reason(_step(other_cpu_pct=45.0, passes_slo=True)) is None


def test_the_summary_says_what_explains_a_step() -> None:
    step = {
        "worst_slot": {"at_ms": 1900, "slow": 259, "of": 410, "max_ms": 147.8, "slots_with_slow": 18},
        "pg_maintenance": [
            {"what": "vacuum public.conversations", "from_s": 1.6, "took_s": 0.01},
            {"what": "analyze public.messages", "from_s": 1.7, "took_s": 0.6},
        ],
        "retried_after": {"why": "PostgreSQL maintenance in the window", "first": {"e2e_ms": {"p99": 61.1}}},
    }
    assert step_notes(step) == (
        "259 of 410 over 50 ms at 1.9 s; analyze public.messages at 1.7 s (0.6 s); "
        "1 shorter PostgreSQL maintenance runs; "
        "second try (PostgreSQL maintenance in the window; first p99 61.1 ms)"
    )
    assert step_notes({}) == "-"
