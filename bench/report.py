"""results.json → Markdown: one run's every number beside the relay's (`render`), and over
several runs the table of issue 20's figures, each a median with every run's value, its
relay baseline, its goal and pass/fail (`combine`, `render_summary`).

    python -m bench.report test-artifacts/bench/<time>   # rebuild from its run*/results.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import dig, median, over_runs, ratio

GOAL_P99_MS = 25.0
SLO_P99_MS = 50.0
IDLE_KIB = 24.0
IDLE_CPU_PCT = 2.0
BUSY_PCT = 70.0
CPU_RATIO = 2.0
RATE_RATIO = 0.5
BURST_P99_S = 5.0
# The matching benchmark's last full-run figures (round 5, docs/performance.md): per-event
# p99 of every kind but the tick ≤ 50 µs, tick p99 ≤ 0.89 ms. "No regression" is read as
# staying within 25 % of them (the runs of one round spread about that much).
MATCHING_EVENT_P99_US = 50.0
MATCHING_TICK_P99_US = 890.0
MATCHING_SLACK = 1.25


def _ms(p: dict[str, float]) -> str:
    return f"{p['p50']} / {p['p99']} / {p['p999']}"


def _cpu(step: dict[str, Any], key: str = "cpu_pct") -> str:
    cpu = step.get(key) or {}
    return ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())


def _servers(step: dict[str, Any]) -> str:
    """The servers' own view (peerchat's /metrics): messages per commit, loop lag."""
    seen = step.get("server_metrics") or []
    return "; ".join(
        f"server{i}: {m.get('commit_batch_mean')} msgs/commit, "
        f"loop lag p99 ≤ {m.get('loop_lag_p99_ms_le')} ms, max ≤ {m.get('loop_lag_max_ms_le')} ms"
        for i, m in enumerate(seen)
    )


def _rss(step: dict[str, Any]) -> str:
    rss = step.get("rss_mib") or {}
    return ", ".join(f"{k} {v:.0f}" for k, v in rss.items() if k.startswith("server"))


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "n/a"


def _goal_rows(results: dict[str, Any]) -> list[str]:
    rows = [
        "| | peerchat | bare relay | ratio |",
        "|---|---|---|---|",
    ]
    p, r = results.get("peerchat", {}).get("goal"), results.get("relay", {}).get("goal")
    if p is None:
        return ["(load not run)"]
    r = r or {}

    def get(step: dict[str, Any], *path: str) -> Any:
        value: Any = step
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def row(label: str, *path: str) -> str:
        a, b = get(p, *path), get(r, *path)
        ratio = _ratio(a, b) if isinstance(a, int | float) and isinstance(b, int | float) else ""
        return f"| {label} | {a} | {b if b is not None else ''} | {ratio} |"

    rows += [
        row("server CPU µs per delivered message (web + PostgreSQL + Redis; relay)", "server_cpu_us_per_msg"),
        row("offered msgs/s", "offered_msgs_s"),
        row("delivered msgs/s (in window)", "delivered_msgs_s"),
        row("e2e p50 ms", "e2e_ms", "p50"),
        row("e2e p99 ms", "e2e_ms", "p99"),
        row("e2e p99.9 ms", "e2e_ms", "p999"),
        row("send→ack p50 ms", "ack_ms", "p50"),
        row("send→ack p99 ms", "ack_ms", "p99"),
        row("send→ack p99.9 ms", "ack_ms", "p999"),
        row("errors (error frames, unexpected closes, failed sends)", "errors"),
        row("undelivered after the drain", "undelivered"),
        row("unacked after the drain", "unacked"),
        row("seq gaps seen", "counts", "seq_gaps"),
        row("generator send lag p99 ms", "generator_lag_ms", "p99"),
        row("machine busy % (2 cores)", "machine_busy_pct"),
        row("other processes' CPU % of a core (shared machine)", "other_cpu_pct"),
        f"| CPU % of a core | {_cpu(p)} | {_cpu(r)} | |",
        f"| waiting for a core, % of the window | {_cpu(p, 'runqueue_wait_pct')} "
        f"| {_cpu(r, 'runqueue_wait_pct')} | |",
        f"| server RSS MiB | {_rss(p)} | {_rss(r)} | |",
        f"| servers' own metrics | {_servers(p)} | | |",
    ]
    return rows


def _search_rows(results: dict[str, Any]) -> list[str]:
    rows = [
        "| target | offered msgs/s | per side msg/s | delivered/s | e2e p50/p99/p99.9 ms "
        "| ack p50/p99/p99.9 ms | errors | undelivered | CPU % of a core | others % | p99 ≤ 50 ms "
        "| worst 100 ms; PostgreSQL maintenance; run again |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("peerchat", "relay"):
        for step in results.get(kind, {}).get("search", {}).get("steps", []):
            rows.append(
                f"| {kind} | {step['offered_msgs_s']} | {step['side_rate']} | {step['delivered_msgs_s']} "
                f"| {_ms(step['e2e_ms'])} | {_ms(step['ack_ms'])} | {step['errors']} | {step['undelivered']} "
                f"| {_cpu(step)} "
                f"| {step.get('other_cpu_pct')} "
                f"| {'yes' if step['passes_slo'] else 'no'} | {step_notes(step)} |"
            )
    return rows


def step_notes(step: dict[str, Any]) -> str:
    """What explains a step's tail: its worst 100 ms of send time, PostgreSQL's maintenance
    in its window, and whether it is a second attempt (and the first one's p99)."""
    notes = []
    worst = step.get("worst_slot")
    if worst:
        notes.append(f"{worst['slow']} of {worst['of']} over 50 ms at {worst['at_ms'] / 1000:.1f} s")
    maintenance = step.get("pg_maintenance") or []
    long = [m for m in maintenance if m["took_s"] >= 0.05]  # the rest: a few ms each
    for m in long:
        notes.append(f"{m['what']} at {m['from_s']} s ({m['took_s']} s)")
    if len(maintenance) > len(long):
        notes.append(f"{len(maintenance) - len(long)} shorter PostgreSQL maintenance runs")
    again = step.get("retried_after")
    if again:
        notes.append(f"second try ({again['why']}; first p99 {again['first']['e2e_ms']['p99']} ms)")
    return "; ".join(notes) or "-"


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        f"# peerchat benchmark ({results['mode']}), {m['date_utc']}",
        "",
        f"Machine: {m['nproc']} cores, {m['cpu_model']}, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}. Elapsed {results.get('elapsed_s')} s.",
        "",
    ]
    peer, relay = results.get("peerchat"), results.get("relay")
    if peer:
        goal = peer.get("goal", {})
        out += [
            f"## Goal load: {peer['sockets']} sockets over {peer['processes']} processes, "
            f"{results['plan']['load']['goal_rate']} msg/s per side",
            "",
            *_goal_rows(results),
            "",
        ]
        if goal:
            ok = (
                goal["e2e_ms"]["p99"] <= GOAL_P99_MS
                and goal["ack_ms"]["p99"] <= GOAL_P99_MS
                and goal["errors"] == 0
                and goal["undelivered"] == 0
                and goal["unacked"] == 0
            )
            out += [
                f"Goal (p99 e2e and ack ≤ {GOAL_P99_MS:.0f} ms, zero errors): "
                f"**{'met' if ok else 'missed'}**",
                "",
            ]
        best_p = peer.get("search", {}).get("highest_passing_msgs_s")
        best_r = (relay or {}).get("search", {}).get("highest_passing_msgs_s")
        shape = (relay or {}).get("search", {}).get("limited_by_load_shape")
        out += [
            f"## Highest sustained rate with p99 ≤ {SLO_P99_MS:.0f} ms",
            "",
            f"peerchat {best_p} msgs/s, bare relay {best_r} msgs/s"
            f"{' (every step passed: the relay limit is higher)' if shape else ''}; "
            f"ratio {_ratio(best_p, best_r)} (goal ≥ 0.5).",
            "",
            *_search_rows(results),
            "",
        ]
    if peer and peer.get("idle"):
        pi, ri = peer["idle"], (relay or {}).get("idle") or {}
        out += [
            "## Idle cost: every socket authenticated, nothing sent",
            "",
            f"peerchat {pi['server_cpu_pct']} % of a core server side over {pi['seconds']} s with "
            f"{pi['sockets']} sockets ({_cpu(pi)}); relay {ri.get('server_cpu_pct')} % "
            f"(goal ≤ {IDLE_CPU_PCT:g} %). Others on the machine: {pi.get('other_cpu_pct')} % of a core.",
            "",
        ]
    for key in ("burst", "relay_burst"):
        b = results.get(key)
        if not b:
            continue
        w = b["wait_s"]
        out += [
            f"## Burst, {b.get('kind', 'peerchat')}",
            "",
            f"{b['members']} members asked within {b['spread_s']} s, "
            f"{b['specialists_available']} specialists available: {b['matched']} matched; "
            f"request → conversation_started p50 {w['p50']} s, "
            f"p99 {w['p99']} s, max {w['max']} s (goal p99 ≤ {BURST_P99_S:g} s); {b['offers']} offers, "
            f"{b['queued']} queued, {b['queue_updates']} queue updates; errors {b['error_codes']}; "
            f"generator send lag p99 {b.get('generator_send_lag_p99_ms')} ms; "
            f"CPU % of a core {b['cpu_pct']}, machine busy {b['machine_busy_pct']} %.",
            "",
        ]
    if results.get("idle"):
        out += [
            "## Idle authenticated sockets",
            "",
            "| variant | sockets | RSS before → after MiB | KiB per socket | negotiated | connects/s |",
            "|---|---|---|---|---|---|",
        ]
        for row in results["idle"]:
            negotiated = ", ".join(f"{k}: {v}" for k, v in row["negotiated"].items())
            out.append(
                f"| {row['variant']} | {row['sockets']} | {row['rss_before_mib']} → {row['rss_after_mib']} "
                f"| {row['kib_per_socket']} | {negotiated} | {row['connects_per_s']} |"
            )
        out += ["", f"Goal ≤ {IDLE_KIB:.0f} KiB per idle authenticated socket, deflate off.", ""]
    prof = (peer or {}).get("profile")
    if prof and "by_module" in prof:
        out += [
            f"## Profile: peerchat server 0 at {prof['under_load_msgs_s']} msgs/s offered, "
            f"{prof['cpu_pct']} "
            f"({prof['samples']} samples)",
            "",
            "| by module (deepest Python frame) | % | self time by function | % |",
            "|---|---|---|---|",
        ]
        mods, funcs = prof["by_module"], prof["by_function_self"]
        for i in range(max(len(mods), len(funcs))):
            a = mods[i] if i < len(mods) else ("", "")
            b = funcs[i] if i < len(funcs) else ("", "")
            out.append(f"| {a[0]} | {a[1]} | {b[0]} | {b[1]} |")
        out += ["", "| project function (inclusive) | % |", "|---|---|"]
        out += [f"| {name} | {share} |" for name, share in prof["project_inclusive"]]
        out += ["", "| native leaf | % |", "|---|---|"]
        out += [f"| {name} | {share} |" for name, share in prof["native_leaf"][:12]]
        out.append("")
    elif prof:
        out += ["## Profile", "", f"failed: {prof.get('error')}", ""]
    matching = results.get("matching")
    if matching:
        out += ["## Matching benchmark", ""]
        if "output" in matching:
            out += ["```", matching["output"].rstrip(), "```", ""]
        else:
            out += [str(matching), ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- over runs


def run_figures(run: dict[str, Any]) -> dict[str, float | None]:
    """One run's figures of issue 20, peerchat's and the relay's, by name."""
    idle_rows = {row["variant"]: row for row in run.get("idle") or []}
    matching = dig(run, "matching", "summary") or {}
    events = [v["p99_us"] for k, v in matching.items() if k not in ("tick", "all") and not k.startswith("_")]

    def best(kind: str) -> int | None:
        """The highest rate that held; 0 if the search ran and not even its lowest did."""
        searched = dig(run, kind, "search")
        if searched is None:
            return None
        return int(searched.get("highest_passing_msgs_s") or 0)

    peer_best, relay_best = best("peerchat"), best("relay")
    cpu, relay_cpu = (
        dig(run, "peerchat", "goal", "server_cpu_us_per_msg"),
        dig(run, "relay", "goal", "server_cpu_us_per_msg"),
    )
    goal = dig(run, "peerchat", "goal") or {}
    relay_goal = dig(run, "relay", "goal") or {}

    def misses(step: dict[str, Any]) -> int | None:
        if not step:
            return None
        return int(step["errors"]) + int(step["undelivered"]) + int(step["unacked"])

    def unmatched(key: str) -> int | None:
        members = dig(run, key, "members")
        return None if members is None else members - (dig(run, key, "matched") or 0)

    return {
        "cpu_us_per_msg": cpu,
        "relay_cpu_us_per_msg": relay_cpu,
        "cpu_ratio": ratio(cpu, relay_cpu),
        "e2e_p50_ms": dig(goal, "e2e_ms", "p50"),
        "relay_e2e_p50_ms": dig(relay_goal, "e2e_ms", "p50"),
        "e2e_p99_ms": dig(goal, "e2e_ms", "p99"),
        "relay_e2e_p99_ms": dig(relay_goal, "e2e_ms", "p99"),
        "ack_p99_ms": dig(goal, "ack_ms", "p99"),
        "relay_ack_p99_ms": dig(relay_goal, "ack_ms", "p99"),
        "busy_pct": dig(goal, "machine_busy_pct"),
        "relay_busy_pct": dig(relay_goal, "machine_busy_pct"),
        "errors": misses(goal),
        "relay_errors": misses(relay_goal),
        "rate_msgs_s": peer_best,
        "relay_rate_msgs_s": relay_best,
        "rate_ratio": ratio(peer_best, relay_best),
        "idle_kib": dig(idle_rows, "peerchat-deflate-off", "kib_per_socket"),
        "relay_idle_kib": dig(idle_rows, "relay-deflate-off", "kib_per_socket"),
        "idle_cpu_pct": dig(run, "peerchat", "idle", "server_cpu_pct"),
        "relay_idle_cpu_pct": dig(run, "relay", "idle", "server_cpu_pct"),
        "burst_unmatched": unmatched("burst"),
        "relay_burst_unmatched": unmatched("relay_burst"),
        "burst_p50_s": dig(run, "burst", "wait_s", "p50"),
        "relay_burst_p50_s": dig(run, "relay_burst", "wait_s", "p50"),
        "burst_p99_s": dig(run, "burst", "wait_s", "p99"),
        "relay_burst_p99_s": dig(run, "relay_burst", "wait_s", "p99"),
        "matching_event_p99_us": max(events) if events else None,
        "matching_tick_p99_us": dig(matching, "tick", "p99_us"),
    }


Check = Callable[[Sequence[float | None], float | None], bool | None]


def _median_at_most(bound: float) -> Check:
    return lambda values, m: None if m is None else m <= bound


def _every_run(test: Callable[[float], bool]) -> Check:
    def check(values: Sequence[float | None], m: float | None) -> bool | None:
        if not values or any(v is None for v in values):
            return None
        return all(test(v) for v in values if v is not None)

    return check


@dataclass(frozen=True)
class Row:
    label: str
    key: str
    relay_key: str | None
    goal: str
    check: Check | None


ROWS = (
    Row(
        "server CPU per delivered message, µs (goal load)", "cpu_us_per_msg", "relay_cpu_us_per_msg", "", None
    ),
    Row(
        "… ÷ the relay's, same run",
        "cpu_ratio",
        None,
        f"≤ {CPU_RATIO:g} x (median)",
        _median_at_most(CPU_RATIO),
    ),
    Row("goal load e2e p50, ms", "e2e_p50_ms", "relay_e2e_p50_ms", "", None),
    Row(
        "goal load e2e p99, ms",
        "e2e_p99_ms",
        "relay_e2e_p99_ms",
        f"≤ {GOAL_P99_MS:g}",
        _median_at_most(GOAL_P99_MS),
    ),
    Row(
        "goal load send→ack p99, ms",
        "ack_p99_ms",
        "relay_ack_p99_ms",
        f"≤ {GOAL_P99_MS:g}",
        _median_at_most(GOAL_P99_MS),
    ),
    Row(
        "goal load machine busy, % (2 cores)",
        "busy_pct",
        "relay_busy_pct",
        f"≤ {BUSY_PCT:g}",
        _median_at_most(BUSY_PCT),
    ),
    Row(
        "goal load errors + undelivered + unacked",
        "errors",
        "relay_errors",
        "0 in every run",
        _every_run(lambda v: v == 0),
    ),
    Row("highest sustained rate, p99 ≤ 50 ms, msgs/s", "rate_msgs_s", "relay_rate_msgs_s", "", None),
    Row(
        "… ÷ the relay's, same run",
        "rate_ratio",
        None,
        f"≥ {RATE_RATIO:g} in every run",
        _every_run(lambda v: v >= RATE_RATIO),
    ),
    Row(
        "idle: KiB per authenticated socket, deflate off",
        "idle_kib",
        "relay_idle_kib",
        f"≤ {IDLE_KIB:g}",
        _median_at_most(IDLE_KIB),
    ),
    Row(
        "idle: server CPU, % of a core, all sockets silent",
        "idle_cpu_pct",
        "relay_idle_cpu_pct",
        f"≤ {IDLE_CPU_PCT:g}",
        _median_at_most(IDLE_CPU_PCT),
    ),
    Row(
        "burst: members not matched",
        "burst_unmatched",
        "relay_burst_unmatched",
        "0 in every run",
        _every_run(lambda v: v == 0),
    ),
    Row("burst: request → conversation_started p50, s", "burst_p50_s", "relay_burst_p50_s", "", None),
    Row(
        "burst: request → conversation_started p99, s",
        "burst_p99_s",
        "relay_burst_p99_s",
        f"≤ {BURST_P99_S:g}",
        _median_at_most(BURST_P99_S),
    ),
    Row(
        "matching: worst p99 per event kind (tick apart), µs",
        "matching_event_p99_us",
        None,
        f"≤ {MATCHING_EVENT_P99_US * MATCHING_SLACK:g} (round 5 + 25 %)",
        _median_at_most(MATCHING_EVENT_P99_US * MATCHING_SLACK),
    ),
    Row(
        "matching: tick p99, µs",
        "matching_tick_p99_us",
        None,
        f"≤ {MATCHING_TICK_P99_US * MATCHING_SLACK:g} (round 5 + 25 %)",
        _median_at_most(MATCHING_TICK_P99_US * MATCHING_SLACK),
    ),
)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every run's figures, and per figure its median over the runs, the relay's, pass/fail."""
    per_run = [run_figures(run) for run in runs]
    rows = []
    for row in ROWS:
        values = [f[row.key] for f in per_run]
        m = median(values)
        relay = [f[row.relay_key] for f in per_run] if row.relay_key else None
        rows.append(
            {
                "figure": row.label,
                "key": row.key,
                **over_runs(values),
                "relay": over_runs(relay) if relay is not None else None,
                "goal": row.goal,
                "pass": row.check(values, m) if row.check else None,
            }
        )
    first = runs[0] if runs else {}
    return {
        "mode": first.get("mode"),
        "machine": first.get("machine"),
        "runs": len(runs),
        "elapsed_s": [run.get("elapsed_s") for run in runs],
        "figures": rows,
        "per_run": runs,
    }


def _value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render_summary(combined: dict[str, Any]) -> str:
    m = combined.get("machine") or {}
    out = [
        f"# peerchat benchmark ({combined.get('mode')}), {combined.get('runs')} run(s), {m.get('date_utc')}",
        "",
        f"Machine: {m.get('nproc')} cores, {m.get('cpu_model')}, {m.get('ram_gib')} GiB RAM, "
        f"Linux {m.get('kernel')}, Python {m.get('python')}. Each run took "
        f"{', '.join(str(s) for s in combined.get('elapsed_s') or [])} s.",
        "",
        "| figure | peerchat (median) | each run | relay (median) | relay each run | goal | pass |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in combined["figures"]:
        relay = row["relay"] or {}
        verdict = {True: "**pass**", False: "**FAIL**", None: ""}[row["pass"]]
        out.append(
            f"| {row['figure']} | {_value(row['median'])} | {' / '.join(_value(v) for v in row['runs'])} "
            f"| {_value(relay.get('median'))} | {' / '.join(_value(v) for v in relay.get('runs') or [])} "
            f"| {row['goal']} | {verdict} |"
        )
    out.append("")
    return "\n".join(out)


def load_runs(folders: list[Path]) -> list[dict[str, Any]]:
    """Each folder's run*/results.json, or the folder's own results.json if it is one run."""
    runs = []
    for folder in folders:
        files = sorted(folder.glob("run*/results.json")) or [folder / "results.json"]
        runs += [json.loads(f.read_text()) for f in files]
    return runs


def main(argv: list[str] | None = None) -> None:
    folders = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    print(render_summary(combine(load_runs(folders))))


if __name__ == "__main__":
    main()
