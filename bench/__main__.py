"""`python -m bench [--quick]`: every benchmark, one report.

1. Real PostgreSQL (fsync on) and Redis; N conversations seeded straight into the tables.
2. peerchat (`web` processes served as `peerchat serve` serves them), then the bare relay
   (`bench/relay.py`), each under the same open-loop load from the same generator
   processes: a rate search for the highest load that holds p99 ≤ 50 ms, the goal load
   (1 message per second per side), and for peerchat a py-spy profile under that load.
3. Memory per idle authenticated socket, per-message deflate off and on, beside the relay.
4. The matching benchmark (`bench/matching_bench.py`), when it exists.

Results go to test-artifacts/bench/<UTC time>/ (results.json, summary.md, server logs,
the raw profile); the summary is printed at the end.
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

from bench import idle, load, report
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
    matching_timeout_s: float


FULL = Plan(
    conversations=2000,
    workers=2,
    load=load.LoadPlan(
        processes=2,
        goal_rate=1.0,
        goal_s=45,
        goal_warmup_s=5,
        steps=(500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 12000, 16000, 20000, 24000, 32000),
        step_s=10,
        step_warmup_s=2,
        max_side_rate=4.0,
        drain_s=10,
        profile_s=20,
    ),
    idle_sockets=10_000,
    idle_variants=(("peerchat", False), ("peerchat", True), ("relay", False), ("relay", True)),
    matching_timeout_s=240,
)

QUICK = Plan(
    conversations=500,
    workers=2,
    load=replace(
        FULL.load,
        goal_s=10,
        goal_warmup_s=2,
        steps=(500, 1000, 2000, 4000),
        step_s=5,
        step_warmup_s=1,
        drain_s=5,
        profile_s=0,
        quiet_wait_s=2,
        retry_contended=False,
    ),
    idle_sockets=1000,
    idle_variants=(("peerchat", False), ("peerchat", True), ("relay", False)),
    matching_timeout_s=60,
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


def matching_bench(timeout: float, quick: bool) -> dict[str, Any]:
    if not (ROOT / "bench" / "matching_bench.py").exists():
        return {"skipped": "bench/matching_bench.py does not exist yet"}
    args = [sys.executable, "-m", "bench.matching_bench"]
    if quick:
        args += ["--events", "2000"]
    try:
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    return {"exit": done.returncode, "output": (done.stdout + done.stderr)[-8000:]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about one minute, smaller everything")
    parser.add_argument(
        "--skip", action="append", default=[], choices=["load", "peerchat", "relay", "idle", "matching"]
    )
    parser.add_argument("--conversations", type=int, help="override the plan's conversation count")
    parser.add_argument("--profile-s", type=float, help="override the profile's length (0: none)")
    parser.add_argument("--steps", help="comma list of offered msgs/s for the rate search")
    parser.add_argument("--goal-s", type=float, help="override the goal load's length")
    parser.add_argument("--goal-rate", type=float, help="override the goal's msg/s per side")
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
    if args.goal_rate:
        plan = replace(plan, load=replace(plan.load, goal_rate=args.goal_rate))
    if args.profile_s is not None:
        plan = replace(plan, load=replace(plan.load, profile_s=args.profile_s))
    if rate_limit_is_configurable():
        plan = replace(plan, load=replace(plan.load, max_side_rate=20.0))
    nofile = raise_nofile_limit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    artifacts = args.out or ROOT / "test-artifacts" / "bench" / stamp
    artifacts.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "plan": asdict(plan),
        "nofile_limit": nofile,
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
        if "load" not in args.skip:
            if "peerchat" not in args.skip:
                log("peerchat under load")
                results["peerchat"] = load.run_target(
                    "peerchat", plan.load, backends, gen, conversations, artifacts, log
                )
            if "relay" not in args.skip:
                log("bare relay under the same load")
                results["relay"] = load.run_target(
                    "relay", plan.load, backends, gen, conversations, artifacts, log
                )
        if "idle" not in args.skip:
            log(f"idle sockets: {plan.idle_sockets} per variant")
            results["idle"] = [
                idle.measure(kind, deflate, plan.idle_sockets, backends, gen, artifacts, log)
                for kind, deflate in plan.idle_variants
            ]
    finally:
        if gen is not None:
            gen.stop()
        backends.stop()
        wipe(data)
    if "matching" not in args.skip:
        log("matching benchmark")
        results["matching"] = matching_bench(plan.matching_timeout_s, args.quick)
    results["elapsed_s"] = round(time.monotonic() - began)
    (artifacts / "results.json").write_text(json.dumps(results, indent=2, default=str))
    summary = report.render(results)
    (artifacts / "summary.md").write_text(summary)
    print("\n" + summary)
    log(f"done; results in {artifacts}")


if __name__ == "__main__":
    main()
