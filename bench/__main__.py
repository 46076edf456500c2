"""`python -m bench [--quick] [--runs N]`: every figure of issue 20, each beside the bare
relay's, as the median of N runs (3 unless --quick).

Each run, on fresh servers:
1. Real PostgreSQL (fsync on) and Redis; N conversations seeded straight into the tables.
2. peerchat (`web` processes served as `peerchat serve` serves them), then the bare relay
   (`bench/relay.py`), each under the same open-loop load from the same generator
   processes: the idle cost with every socket authenticated and silent, the goal load
   (1 message per second per side) with its server CPU per delivered message, and a
   settled coarse-then-fine rate search for the highest load that holds p99 ≤ 50 ms.
   Before them, memory per idle authenticated socket (deflate off; --idle-deflate adds on).
3. A burst, on a PostgreSQL and Redis of its own: N members ask within 2 s with N
   specialists available (bench/burst.py); the relay matches the first free one.
4. The matching benchmark (`bench/matching_bench.py`).

Results go to test-artifacts/bench/<UTC time>/: run<k>/ per run (results.json,
summary.md, server logs), and over the runs results.json and summary.md with the table of
every figure (median, each run, relay, goal, pass/fail). `python -m bench.report DIR`
rebuilds that table from DIR/run*/results.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import burst, idle, load, report
from bench.infra import ROOT, Backends, raise_nofile_limit, rate_limit_is_configurable, seed_conversations
from bench.loadgen import Generator
from chat.devservers import wipe


@dataclass(frozen=True)
class Plan:
    conversations: int
    workers: int
    load: load.LoadPlan
    idle_sockets: int
    idle_variants: tuple[tuple[str, bool], ...]
    burst_members: int
    burst_spread_s: float
    burst_timeout_s: float
    matching_events: int
    matching_timeout_s: float


FULL = Plan(
    conversations=2000,
    workers=2,
    load=load.LoadPlan(
        processes=2,
        goal_rate=1.0,
        goal_s=30,
        goal_warmup_s=10,
        steps=(4000, 5000, 6000, 8000, 10000, 12000, 16000, 20000, 24000, 32000),
        step_s=5,
        step_warmup_s=2,
        max_side_rate=4.0,
        drain_s=10,
        profile_s=0,
        quiet_wait_s=5,
        # One WebSocket ping interval (20 s on both servers: chat/cli.py, bench/relay.py):
        # every socket connected before the window pings exactly once inside it, whatever
        # its phase, so both servers pay their keepalive. At 15 s the relay's sockets, all
        # connected within a second or two, pinged after the window and it read 0.
        idle_s=20,
    ),
    idle_sockets=2000,
    idle_variants=(("peerchat", False), ("relay", False)),
    burst_members=2000,
    burst_spread_s=2.0,
    burst_timeout_s=45,
    matching_events=20_000,
    matching_timeout_s=20,  # timing stops at half of it (about 2 s is usual)
)

QUICK = Plan(
    conversations=500,
    workers=2,
    load=replace(
        FULL.load,
        goal_s=10,
        goal_warmup_s=2,
        steps=(1000, 1500, 2000, 3000, 4000, 6000, 8000),
        step_s=4,
        step_warmup_s=1,
        drain_s=5,
        quiet_wait_s=2,
        retry_contended=False,
        idle_s=5,
    ),
    idle_sockets=500,
    idle_variants=(("peerchat", False), ("relay", False)),
    burst_members=300,
    burst_spread_s=1.0,
    burst_timeout_s=30,
    matching_events=2000,
    matching_timeout_s=20,
)


def machine() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in run("lscpu").splitlines()
            if line.startswith("Model name")
        ),
        "?",
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if "MemTotal" in line
        ),
        0,
    )
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": run("nproc"),
        "cpu_model": model,
        "ram_gib": round(mem_kib / 2**20, 1),
        "kernel": run("uname", "-r"),
        "python": sys.version.split()[0],
    }


def matching_bench(events: int, timeout: float, artifacts: Path) -> dict[str, Any]:
    out = artifacts / "matching.json"
    args = [sys.executable, "-m", "bench.matching_bench", "--events", str(events), "--json", str(out)]
    args += ["--max-s", str(timeout / 2)]
    try:
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    result: dict[str, Any] = {"exit": done.returncode, "output": (done.stdout + done.stderr)[-8000:]}
    if out.exists():
        result["summary"] = json.loads(out.read_text())
    return result


def one_run(plan: Plan, skip: list[str], artifacts: Path, mode: str, log: Any) -> dict[str, Any]:
    """One whole run on fresh servers; its results.json and summary.md go to `artifacts`."""
    artifacts.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    results: dict[str, Any] = {
        "mode": mode,
        "machine": machine(),
        "plan": asdict(plan),
        "rate_limit_raised": rate_limit_is_configurable(),
    }
    data = Path(tempfile.mkdtemp(prefix="peerchat-bench-"))
    backends = Backends(data)
    gen: Generator | None = None
    try:
        log(f"machine: {results['machine']}")
        backends.start()
        log(f"PostgreSQL on {backends.pg.port}, Redis on {backends.redis.port}")
        conversations = seed_conversations(backends.pg.url, plan.conversations)
        log(f"seeded {len(conversations)} conversations")
        gen = Generator(plan.workers)
        if "idle" not in skip:
            # First, before any peerchat process has held (and dropped) a socket: nothing
            # left over (a reconnect grace running out, say) grows the server meanwhile.
            log(f"idle sockets: {plan.idle_sockets} per variant")
            results["idle"] = [
                idle.measure(kind, deflate, plan.idle_sockets, backends, gen, artifacts, log)
                for kind, deflate in plan.idle_variants
            ]
        if "load" not in skip:
            for kind in ("peerchat", "relay"):
                if kind not in skip:
                    log(f"{kind} under load")
                    results[kind] = load.run_target(
                        kind, plan.load, backends, gen, conversations, artifacts, log
                    )
        if "burst" not in skip:
            # On a PostgreSQL and Redis of its own: the load's 2,000 conversations, whose
            # sockets closed, would be ended by the reconnect grace in the middle of the
            # burst, and the load's matching lease would have to run out first.
            backends.stop()
            backends = Backends(data / "burst")
            backends.start()
            for kind, key in (("peerchat", "burst"), ("relay", "relay_burst")):
                if kind in skip:
                    continue
                log(f"burst on {kind}: {plan.burst_members} members, {plan.burst_members} specialists")
                results[key] = burst.measure(
                    kind,
                    plan.burst_members,
                    plan.burst_members,
                    plan.burst_spread_s,
                    plan.burst_timeout_s,
                    plan.load.processes,
                    backends,
                    gen,
                    artifacts,
                    log,
                )
    finally:
        if gen is not None:
            gen.stop()
        backends.stop()
        wipe(data)
    if "matching" not in skip:
        log("matching benchmark")
        results["matching"] = matching_bench(plan.matching_events, plan.matching_timeout_s, artifacts)
    results["elapsed_s"] = round(time.monotonic() - began)
    (artifacts / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (artifacts / "summary.md").write_text(report.render(results))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about a minute a run, smaller everything")
    parser.add_argument(
        "--runs", type=int, help="whole runs, each on fresh servers (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["load", "peerchat", "relay", "idle", "matching", "burst"],
    )
    parser.add_argument("--conversations", type=int, help="override the plan's conversation count")
    parser.add_argument(
        "--profile-s", type=float, help="py-spy profile at the highest passing rate (0: none)"
    )
    parser.add_argument("--steps", help="comma list: the rate search's coarse ladder, msgs/s")
    parser.add_argument("--goal-s", type=float, help="override the goal load's length")
    parser.add_argument("--goal-rate", type=float, help="override the goal's msg/s per side")
    parser.add_argument("--goal-warmup-s", type=float, help="override the goal load's discarded warm-up")
    parser.add_argument("--idle-s", type=float, help="override the idle-CPU window (0: none)")
    parser.add_argument("--burst", type=int, help="override the burst's members (and specialists)")
    parser.add_argument(
        "--idle-deflate", action="store_true", help="also measure idle memory with deflate on"
    )
    parser.add_argument("--out", type=Path, help="results folder (default test-artifacts/bench/<time>)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.conversations:
        plan = replace(plan, conversations=args.conversations)
    if args.steps:
        steps = tuple(int(s) for s in args.steps.split(","))
        plan = replace(plan, load=replace(plan.load, steps=steps))
    if args.goal_s:
        plan = replace(plan, load=replace(plan.load, goal_s=args.goal_s))
    if args.goal_warmup_s is not None:
        plan = replace(plan, load=replace(plan.load, goal_warmup_s=args.goal_warmup_s))
    if args.goal_rate:
        plan = replace(plan, load=replace(plan.load, goal_rate=args.goal_rate))
    if args.profile_s is not None:
        plan = replace(plan, load=replace(plan.load, profile_s=args.profile_s))
    if args.idle_s is not None:
        plan = replace(plan, load=replace(plan.load, idle_s=args.idle_s))
    if args.burst:
        plan = replace(plan, burst_members=args.burst)
    if args.idle_deflate:
        plan = replace(plan, idle_variants=(*plan.idle_variants, ("peerchat", True), ("relay", True)))
    if rate_limit_is_configurable():
        plan = replace(plan, load=replace(plan.load, max_side_rate=20.0))
    runs = args.runs or (1 if args.quick else 3)
    raise_nofile_limit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    artifacts = args.out or ROOT / "test-artifacts" / "bench" / stamp
    artifacts.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    mode = "quick" if args.quick else "full"
    all_runs = []
    for k in range(1, runs + 1):
        log(f"run {k} of {runs}")
        try:
            all_runs.append(one_run(plan, args.skip, artifacts / f"run{k}", mode, log))
        except Exception as exc:  # one run failing must not lose the others
            log(f"run {k} failed: {type(exc).__name__}: {exc}")
            all_runs.append({"mode": mode, "machine": machine(), "error": f"{type(exc).__name__}: {exc}"})
            continue
        log(f"run {k} took {all_runs[-1]['elapsed_s']} s")
        # The table so far, after every run: a long series that is cut short still has one.
        (artifacts / "summary.md").write_text(report.render_summary(report.combine(all_runs)))
    combined = report.combine(all_runs)
    (artifacts / "results.json").write_text(json.dumps(combined, indent=2, default=str))
    summary = report.render_summary(combined)
    (artifacts / "summary.md").write_text(summary)
    if runs == 1:
        print("\n" + report.render(all_runs[0]))
    print("\n" + summary)
    log(f"done; results in {artifacts}")


if __name__ == "__main__":
    main()
