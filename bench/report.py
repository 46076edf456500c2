"""results.json → a Markdown summary: every peerchat number beside the relay's."""

from __future__ import annotations

from typing import Any

GOAL_P99_MS = 25.0
SLO_P99_MS = 50.0
IDLE_KIB = 64.0


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
        "| ack p50/p99/p99.9 ms | errors | undelivered | CPU % of a core | others % | p99 ≤ 50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("peerchat", "relay"):
        for step in results.get(kind, {}).get("search", {}).get("steps", []):
            rows.append(
                f"| {kind} | {step['offered_msgs_s']} | {step['side_rate']} | {step['delivered_msgs_s']} "
                f"| {_ms(step['e2e_ms'])} | {_ms(step['ack_ms'])} | {step['errors']} | {step['undelivered']} "
                f"| {_cpu(step)} "
                f"| {step.get('other_cpu_pct')} "
                f"| {'yes' if step['passes_slo'] else 'no'} |"
            )
    return rows


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
        out += ["", f"Goal ≤ {IDLE_KIB:.0f} KiB per idle authenticated socket.", ""]
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
