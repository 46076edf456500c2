"""One target (peerchat or the bare relay) under the open-loop load: connect every socket
once, measure the idle cost with every socket authenticated and silent, run the goal load,
then find the highest rate that holds p99 ≤ 50 ms (a coarse climb, then a fine one, each
step after a settle and a discarded warm-up), and optionally profile.

"Server" CPU is every process the target needs to deliver a message: for peerchat the
`web` processes, PostgreSQL (its whole process tree) and Redis; for the relay its processes.

Load is counted in messages per second for the whole run (conversations * 2 sides *
messages per second per side); each step spreads it evenly over every connected socket.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from bench import pglog, profiling, stats
from bench.infra import (
    Backends,
    Conversation,
    CpuMeter,
    ServerProcess,
    Watched,
    hello,
    wait_for_quiet,
)
from bench.loadgen import Generator, new_histogram
from bench.wsclient import Side

SLO_MS = 50.0
# A step that fails while other processes used more than this share of one core is run
# again once: the machine is shared with other sessions' test suites.
OTHER_CPU_PCT = 30.0


@dataclass(frozen=True)
class LoadPlan:
    processes: int
    goal_rate: float  # messages per second per side
    goal_s: float
    goal_warmup_s: float
    steps: tuple[int, ...]  # the coarse ladder: offered messages per second, whole run
    step_s: float  # each step's length, warm-up included
    step_warmup_s: float  # sent but not measured: the step reaches its steady state first
    max_side_rate: float  # the flood guard allows 5/s per socket unless raised
    drain_s: float
    profile_s: float  # 0: no profile
    quiet_wait_s: float = 10.0  # before each step, wait up to this long for others to quieten
    retry_contended: bool = True  # run a failed step again if others were busy during it
    idle_s: float = 20.0  # the idle window: every socket connected, nothing sent (0: none)
    fine_min: int = 250  # the fine climb's smallest step, msgs/s
    settle_pause_s: float = 0.5  # after the servers went quiet, before the next step


def _percentiles(h: HdrHistogram) -> dict[str, float]:
    if h.get_total_count() == 0:
        return {"p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    return {
        "p50": round(h.get_value_at_percentile(50) / 1000, 2),
        "p99": round(h.get_value_at_percentile(99) / 1000, 2),
        "p999": round(h.get_value_at_percentile(99.9) / 1000, 2),
        "max": round(h.get_max_value() / 1000, 2),
    }


def merge(replies: list[dict[str, Any]], offered: float, window_s: float) -> dict[str, Any]:
    hists = {name: new_histogram() for name in ("e2e", "ack", "lag")}
    for reply in replies:
        for name, h in hists.items():
            h.decode_and_add(reply[name])
    total = {
        key: sum(int(r[key]) for r in replies)
        for key in (
            "sent",
            "acked",
            "delivered",
            "delivered_in_window",
            "send_failures",
            "errors",
            "unexpected_closes",
            "seq_gaps",
        )
    }
    codes: dict[str, int] = {}
    closes: dict[str, int] = {}
    for r in replies:
        for code, n in r["error_codes"].items():
            codes[code] = codes.get(code, 0) + n
        for code, n in r["close_codes"].items():
            closes[code] = closes.get(code, 0) + n
    e2e, ack = _percentiles(hists["e2e"]), _percentiles(hists["ack"])
    timeline = merge_timelines([r["timeline"] for r in replies if "timeline" in r])
    # Not delivered (or not acked) by the end of the drain: late or lost, either way a miss.
    lost = total["sent"] - total["delivered"]
    unacked = total["sent"] - total["acked"]
    errors = total["errors"] + total["send_failures"] + total["unexpected_closes"]
    return {
        "offered_msgs_s": round(offered),
        "sent_msgs_s": round(total["sent"] / window_s),
        "delivered_msgs_s": round(total["delivered_in_window"] / window_s),
        "e2e_ms": e2e,
        "ack_ms": ack,
        "generator_lag_ms": _percentiles(hists["lag"]),
        "generator_cpu_s": [round(r["cpu_s"], 1) for r in replies],
        "counts": total,
        "undelivered": lost,
        "unacked": unacked,
        "errors": errors,
        "error_codes": codes,
        "close_codes": closes,  # unexpected closes during the step, by code
        "timeline": timeline,
        "worst_slot": worst_slot(timeline),
    }


def merge_timelines(timelines: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' timelines of one step as one: counts added, the worst of each slot."""
    size = max((len(t["count"]) for t in timelines), default=0)
    merged: dict[str, Any] = {
        "from_ns": timelines[0].get("from_ns", 0) if timelines else 0,
        "slot_ms": timelines[0]["slot_ms"] if timelines else 100,
        "count": [0] * size,
        "slow": [0] * size,
        "max_us": [0] * size,
    }
    for t in timelines:
        for i in range(len(t["count"])):
            merged["count"][i] += t["count"][i]
            merged["slow"][i] += t["slow"][i]
            merged["max_us"][i] = max(merged["max_us"][i], t["max_us"][i])
    return merged


def worst_slot(timeline: dict[str, Any]) -> dict[str, Any] | None:
    """The slot with the most messages over the bound: when (ms after the warm-up), how
    many of how many, the worst; and how many slots had any."""
    slow = timeline["slow"]
    if not slow or not any(slow):
        return None
    i = max(range(len(slow)), key=slow.__getitem__)
    return {
        "at_ms": i * timeline["slot_ms"],
        "slow": slow[i],
        "of": timeline["count"][i],
        "max_ms": round(timeline["max_us"][i] / 1000, 1),
        "slots_with_slow": sum(1 for n in slow if n),
    }


def passes(step: dict[str, Any], slo_ms: float = SLO_MS) -> bool:
    return bool(
        step["errors"] == 0
        and step["undelivered"] == 0
        and step["unacked"] == 0
        and step["e2e_ms"]["p99"] <= slo_ms
        and step["ack_ms"]["p99"] <= slo_ms
        and step["delivered_msgs_s"] >= 0.97 * step["sent_msgs_s"]
    )


SERVER_SIDE = ("server", "postgres", "redis")  # name prefixes of the CPU a target costs


def server_cpu_s(cpu_s: dict[str, float]) -> float:
    """CPU seconds of the processes that serve (not the generator's, not others')."""
    return sum(v for k, v in cpu_s.items() if k.startswith(SERVER_SIDE))


@dataclass
class Target:
    kind: str  # "peerchat" | "relay"
    servers: list[ServerProcess]
    gen: Generator
    watched: list[Watched]
    artifacts: Path
    log: Any
    connected: int = 0
    step_number: int = 0
    pg_log: Path | None = None  # PostgreSQL's log: its maintenance during each step

    def server_side(self) -> list[Watched]:
        return [w for w in self.watched if w.name.startswith(SERVER_SIDE)]

    def settle(
        self,
        quiet_pct: float = 25.0,
        timeout: float = 60.0,
        quiet_wait_s: float = 10.0,
        pause_s: float = 1.0,
        sample_s: float = 0.25,
    ) -> float:
        """Wait for the servers (with PostgreSQL and Redis) to finish any backlog a previous
        step left behind: four readings in a row under `quiet_pct` of a core together
        (bench/stats.py, `settled`); then pause; then (for a while) wait for other people's
        work on this shared machine to quieten. Returns the seconds it took."""
        began = time.monotonic()
        deadline = began + timeout
        servers = self.server_side()
        samples: list[float] = []
        before = sum(w.cpu_seconds() for w in servers)
        while time.monotonic() < deadline:
            time.sleep(sample_s)
            now = sum(w.cpu_seconds() for w in servers)
            samples.append(100 * (now - before) / sample_s)
            before = now
            if stats.settled(samples, quiet_pct, consecutive=4):
                break
        time.sleep(pause_s)
        if quiet_wait_s > 0:
            wait_for_quiet(self.watched, OTHER_CPU_PCT, timeout=quiet_wait_s)
        return time.monotonic() - began

    def idle(self, seconds: float) -> dict[str, Any]:
        """Every socket connected and authenticated, nothing sent: what the servers cost
        doing nothing (heartbeats, presence, background loops, pings)."""
        meter = CpuMeter(self.watched)
        meter.start()
        time.sleep(seconds)
        usage = meter.stop()
        cpu_s: dict[str, float] = usage["cpu_s"]  # type: ignore[assignment]
        wall = float(usage["wall_s"])  # type: ignore[arg-type]
        server_pct = round(100 * server_cpu_s(cpu_s) / wall, 2)
        result = {"sockets": self.connected, "seconds": round(wall, 1), "server_cpu_pct": server_pct, **usage}
        self.log(
            f"  {self.kind:8} idle, {self.connected} sockets, {wall:.0f} s: "
            f"server side {server_pct} % of a core "
            f"({usage.get('cpu_pct')}), others {usage.get('other_cpu_pct')}%"
        )
        return result

    def step(self, side_rate: float, warmup_s: float, duration_s: float, drain_s: float) -> dict[str, Any]:
        """One open-loop step at `side_rate` messages a second from every socket. CPU is
        read over the measured window only (after the warm-up, before the drain)."""
        self.step_number += 1
        meter = CpuMeter(self.watched)
        usage: dict[str, Any] = {}
        window: list[float] = []  # unix times the measured window began and ended
        lead = 0.2  # Generator.run starts every worker this long after it is called

        def start() -> None:
            window.append(time.time())
            meter.start()

        def stop() -> None:
            window.append(time.time())
            usage.update(meter.stop())

        begin = threading.Timer(lead + warmup_s, start)
        end = threading.Timer(lead + duration_s, stop)
        begin.start()
        end.start()
        before = [scrape(server) for server in self.servers] if self.kind == "peerchat" else []
        replies = self.gen.run(
            self.step_number, side_rate, warmup_s=warmup_s, duration_s=duration_s, drain_s=drain_s
        )
        end.join()
        result = merge(replies, side_rate * self.connected, duration_s - warmup_s)
        result.update(usage)
        delivered = max(1, result["delivered_msgs_s"])
        # CPU per delivered message: steadier than latency on a machine others share too.
        result["cpu_us_per_msg"] = {
            name: round(pct * 1e4 / delivered) for name, pct in (usage.get("cpu_pct") or {}).items()
        }
        # The figure of issue 20: every serving process's CPU over the window, divided by
        # the messages delivered in it.
        result["server_cpu_us_per_msg"] = stats.cpu_per_message_us(
            server_cpu_s(usage.get("cpu_s") or {}), result["counts"]["delivered_in_window"]
        )
        if before:
            result["server_metrics"] = [
                server_metrics(b, scrape(server)) for b, server in zip(before, self.servers, strict=True)
            ]
        result["side_rate"] = round(side_rate, 4)
        result["passes_slo"] = passes(result)
        if self.pg_log is not None and len(window) == 2:
            # Autovacuum runs and checkpoints that overlapped the measured window.
            result["pg_maintenance"] = pglog.during(self.pg_log, window[0], window[1])
        e2e, ack = result["e2e_ms"], result["ack_ms"]
        self.log(
            f"  {self.kind:8} {result['offered_msgs_s']:6d} msg/s: e2e p50/p99/p99.9 "
            f"{e2e['p50']}/{e2e['p99']}/{e2e['p999']} ms, ack p99 {ack['p99']} ms, "
            f"delivered {result['delivered_msgs_s']}/s, errors {result['errors']}, "
            f"undelivered {result['undelivered']}, server {result['server_cpu_us_per_msg']} µs/msg, "
            f"busy {result.get('machine_busy_pct')}%, "
            f"cpu% {result.get('cpu_pct')}, waiting% {result.get('runqueue_wait_pct')}, "
            f"others {result.get('other_cpu_pct')}%"
            + (f", worst 100 ms {result['worst_slot']}" if result.get("worst_slot") else "")
            + (f", PostgreSQL maintenance {result['pg_maintenance']}" if result.get("pg_maintenance") else "")
            + (f", servers {result['server_metrics']}" if "server_metrics" in result else "")
        )
        return result


def scrape(server: ServerProcess) -> dict[str, float]:
    """A peerchat process's /metrics, as {sample name with labels: value}."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("peerchat_"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                samples[name] = float(value)
    return samples


def server_metrics(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Over one step, from the server's own histograms: messages per group commit, and how
    late the event loop's 100 ms timer fired (p99 and worst, as bucket upper bounds)."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    batches = delta("peerchat_message_commit_batch_size_count")
    lag_prefix = 'peerchat_event_loop_lag_seconds_bucket{le="'
    buckets = sorted(
        (float(name[len(lag_prefix) : -2]), delta(name)) for name in after if name.startswith(lag_prefix)
    )
    total = buckets[-1][1] if buckets else 0.0

    def bound(share: float) -> float | None:
        for upper, count in buckets:
            if total and count >= share * total:
                return upper * 1000
        return None

    committed = delta("peerchat_message_commit_batch_size_sum")
    return {
        "commit_batch_mean": round(committed / batches, 2) if batches else None,
        "loop_lag_p99_ms_le": bound(0.99),
        "loop_lag_max_ms_le": bound(1.0),
    }


def sides_for(
    kind: str, conversations: list[Conversation], servers: list[ServerProcess], workers: int
) -> list[list[Side]]:
    """Deal both sockets of each conversation to the same generator worker. Peerchat's
    sockets land on processes at random, as behind a load balancer (so about half the
    conversations cross processes through Redis); the relay has no bus, so a pair shares
    its process."""
    rng = random.Random(7)
    shares: list[list[Side]] = [[] for _ in range(workers)]
    for i, c in enumerate(conversations):
        share = shares[i % workers]
        if kind == "relay":
            url = servers[i % len(servers)].url
            share.append(Side(url, _relay_hello(c.id, "member"), c.id, "member"))
            share.append(Side(url, _relay_hello(c.id, "specialist"), c.id, "specialist"))
        else:
            n = int(c.id.removeprefix("bench-c"))
            m_url = servers[rng.randrange(len(servers))].url
            s_url = servers[rng.randrange(len(servers))].url
            share.append(Side(m_url, hello(c.member_id, "member", f"Member {n}"), c.id, "member"))
            share.append(
                Side(s_url, hello(c.specialist_id, "specialist", f"Specialist {n}"), c.id, "specialist")
            )
    return shares


def _relay_hello(conversation_id: str, role: str) -> str:
    return '{"type":"hello","token":"' + conversation_id + "|" + role + '"}'


def _step_with_retry(target: Target, side_rate: float, plan: LoadPlan) -> dict[str, Any]:
    settle_s = target.settle(quiet_wait_s=plan.quiet_wait_s, pause_s=plan.settle_pause_s)
    result = target.step(side_rate, plan.step_warmup_s, plan.step_s, plan.drain_s)
    result["settled_s"] = round(settle_s, 1)
    why = retry_reason(result) if plan.retry_contended else None
    if why is not None:
        target.log(f"  ({why}: running it again)")
        target.settle(quiet_wait_s=plan.quiet_wait_s, pause_s=plan.settle_pause_s)
        again = target.step(side_rate, plan.step_warmup_s, plan.step_s, plan.drain_s)
        again["retried_after_other_cpu_pct"] = result.get("other_cpu_pct", 0)
        again["retried_after"] = {"why": why, "first": _summary(result)}
        result = again
    return result


def retry_reason(result: dict[str, Any]) -> str | None:
    """Why a step that missed is run once more, or None: others' work on this shared
    machine sank its short window (a rate that cannot be held misses the second time too;
    the second step is the result). PostgreSQL's own periodic maintenance in the window (an
    autovacuum pass every minute, a checkpoint) is recorded with the step but is no reason:
    it is the service's own work, production meets it too, a sustained rate must hold
    through it, and the relay, which has no PostgreSQL, would never get the second try."""
    if result["passes_slo"]:
        return None
    if result.get("other_cpu_pct", 0) > OTHER_CPU_PCT:
        return f"other processes used {result['other_cpu_pct']}% of a core"
    return None


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {
        key: result.get(key)
        for key in ("e2e_ms", "ack_ms", "other_cpu_pct", "pg_maintenance", "worst_slot", "server_metrics")
    }


def search(target: Target, plan: LoadPlan, known: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The highest rate that holds p99 ≤ 50 ms with nothing lost (bench/stats.py,
    `RateSearch`): a coarse climb up the plan's ladder to the first step that misses, then a
    fine climb from the highest coarse step that held, in quarters of the gap (≥ 250 msgs/s),
    to the first fine step that misses. Each step settles first and discards its warm-up.
    A rate in `known` (the goal load, just measured at the same rate) is not run again."""
    ladder = [r for r in plan.steps if r / target.connected <= plan.max_side_rate]
    climb = stats.RateSearch(ladder, min_fine=plan.fine_min)
    steps: list[dict[str, Any]] = []
    while (offered := climb.next()) is not None:
        if known and offered in known:
            result = {**known[offered], "reused": "goal load"}
        else:
            result = _step_with_retry(target, offered / target.connected, plan)
        result["phase"] = climb.phase
        steps.append(result)
        climb.record(offered, bool(result["passes_slo"]))
    return {
        "steps": steps,
        "highest_passing_msgs_s": climb.best,
        "first_failing_msgs_s": climb.first_failing,
        # Every step passed: the true limit is above what this load shape can offer.
        "limited_by_load_shape": climb.limited_by_ladder,
    }


def profile(target: Target, plan: LoadPlan, side_rate: float) -> dict[str, Any]:
    out = target.artifacts / f"profile-{target.kind}-server0.raw"
    spy = profiling.record(target.servers[0].pid, plan.profile_s, out)
    time.sleep(1.0)  # py-spy attaches
    load = target.step(side_rate, 1.0, plan.profile_s, plan.drain_s)
    _, err = spy.communicate(timeout=60)
    if not out.exists():
        return {"error": err.decode(errors="replace")[-2000:]}
    return {
        "under_load_msgs_s": load["offered_msgs_s"],
        "e2e_ms_under_profiler": load["e2e_ms"],
        "cpu_pct": load.get("cpu_pct"),
        "raw": str(out),
        **profiling.summarize(out),
    }


def run_target(
    kind: str,
    plan: LoadPlan,
    backends: Backends,
    gen: Generator,
    conversations: list[Conversation],
    artifacts: Path,
    log: Any,
) -> dict[str, Any]:
    module = "bench.serve" if kind == "peerchat" else "bench.relay"
    env = backends.env()
    servers = [ServerProcess(module, env, artifacts / f"{kind}-{i}.log") for i in range(plan.processes)]
    try:
        for server in servers:
            server.start()
        watched = [Watched(f"server{i}", s.pid) for i, s in enumerate(servers)]
        watched += [Watched(f"loadgen{i}", pid) for i, pid in enumerate(gen.pids)]
        if kind == "peerchat":
            assert backends.pg.proc is not None and backends.redis.proc is not None
            watched.append(Watched("postgres", backends.pg.proc.pid, children=True))
            watched.append(Watched("redis", backends.redis.proc.pid))
        target = Target(kind, servers, gen, watched, artifacts, log)
        if kind == "peerchat":
            target.pg_log = backends.pg_log
        started = time.monotonic()
        replies = gen.connect(sides_for(kind, conversations, servers, len(gen.pipes)))
        target.connected = sum(int(r["connected"]) for r in replies)
        failed: dict[str, int] = {}
        for r in replies:
            for why, n in r["failed"].items():
                failed[why] = failed.get(why, 0) + n
        connect_s = time.monotonic() - started
        log(f"  {kind}: {target.connected} sockets over {plan.processes} processes in {connect_s:.1f} s")
        result: dict[str, Any] = {
            "kind": kind,
            "processes": plan.processes,
            "sockets": target.connected,
            "connect_failed": failed,
            "connect_s": round(connect_s, 1),
            "connects_per_s": round(target.connected / connect_s),
        }
        if not target.connected:
            return result
        if plan.idle_s:
            # First, before any message: what holding every socket costs when nothing happens.
            target.settle(quiet_wait_s=plan.quiet_wait_s, pause_s=plan.settle_pause_s)
            result["idle"] = target.idle(plan.idle_s)
        # The goal load next, on a fresh system, its CPU per delivered message the figure
        # compared across targets; then the rate search, which ends in an overload.
        target.settle(quiet_wait_s=plan.quiet_wait_s, pause_s=plan.settle_pause_s)
        result["goal"] = target.step(plan.goal_rate, plan.goal_warmup_s, plan.goal_s, plan.drain_s)
        goal = result["goal"]
        result["search"] = search(target, plan, known={goal["offered_msgs_s"]: goal})
        if plan.profile_s and kind == "peerchat":
            # At the highest load it sustains: where the time goes when it is working hard.
            best = result["search"]["highest_passing_msgs_s"] or plan.steps[0]
            target.settle(quiet_wait_s=plan.quiet_wait_s, pause_s=plan.settle_pause_s)
            result["profile"] = profile(target, plan, best / target.connected)
        gen.close_sockets()
        return result
    finally:
        for server in servers:
            server.stop()
