"""One target (peerchat or the bare relay) under the open-loop load: connect every socket
once, find the highest rate that holds p99 ≤ 50 ms, run the goal load, and profile.

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

from bench import profiling
from bench.infra import (
    Backends,
    Conversation,
    CpuMeter,
    ServerProcess,
    Watched,
    hello,
    wait_for_quiet,
)
from bench.loadgen import Generator, Side, new_histogram

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
    steps: tuple[int, ...]  # offered messages per second, whole run
    step_s: float
    step_warmup_s: float
    max_side_rate: float  # the flood guard allows 5/s per socket unless raised
    drain_s: float
    profile_s: float  # 0: no profile
    quiet_wait_s: float = 10.0  # before each step, wait up to this long for others to quieten
    retry_contended: bool = True  # run a failed step again if others were busy during it


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

    def settle(self, quiet_pct: float = 25.0, timeout: float = 60.0, quiet_wait_s: float = 10.0) -> None:
        """Wait for the servers to finish any backlog a previous step left behind, then
        (for a while) for other people's work on this shared machine to quieten."""
        deadline = time.monotonic() + timeout
        servers = [w for w in self.watched if w.name.startswith("server")]
        while time.monotonic() < deadline:
            before = sum(w.cpu_seconds() for w in servers)
            time.sleep(0.5)
            if 100 * (sum(w.cpu_seconds() for w in servers) - before) / 0.5 < quiet_pct:
                break
        if quiet_wait_s > 0:
            wait_for_quiet(self.watched, OTHER_CPU_PCT, timeout=quiet_wait_s)

    def step(self, side_rate: float, warmup_s: float, duration_s: float, drain_s: float) -> dict[str, Any]:
        """One open-loop step at `side_rate` messages a second from every socket. CPU is
        read over the measured window only (after the warm-up, before the drain)."""
        self.step_number += 1
        meter = CpuMeter(self.watched)
        usage: dict[str, Any] = {}
        lead = 0.2  # Generator.run starts every worker this long after it is called
        begin = threading.Timer(lead + warmup_s, meter.start)
        end = threading.Timer(lead + duration_s, lambda: usage.update(meter.stop()))
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
        if before:
            result["server_metrics"] = [
                server_metrics(b, scrape(server)) for b, server in zip(before, self.servers, strict=True)
            ]
        result["side_rate"] = round(side_rate, 4)
        result["passes_slo"] = passes(result)
        e2e, ack = result["e2e_ms"], result["ack_ms"]
        self.log(
            f"  {self.kind:8} {result['offered_msgs_s']:6d} msg/s: e2e p50/p99/p99.9 "
            f"{e2e['p50']}/{e2e['p99']}/{e2e['p999']} ms, ack p99 {ack['p99']} ms, "
            f"delivered {result['delivered_msgs_s']}/s, errors {result['errors']}, "
            f"undelivered {result['undelivered']}, "
            f"cpu% {result.get('cpu_pct')}, waiting% {result.get('runqueue_wait_pct')}, "
            f"others {result.get('other_cpu_pct')}%"
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
    target.settle(quiet_wait_s=plan.quiet_wait_s)
    result = target.step(side_rate, plan.step_warmup_s, plan.step_s, plan.drain_s)
    contended = result.get("other_cpu_pct", 0) > OTHER_CPU_PCT
    if not result["passes_slo"] and contended and plan.retry_contended:
        target.log(f"  (other processes used {result['other_cpu_pct']}% of a core: running it again)")
        target.settle(quiet_wait_s=plan.quiet_wait_s)
        again = target.step(side_rate, plan.step_warmup_s, plan.step_s, plan.drain_s)
        again["retried_after_other_cpu_pct"] = result["other_cpu_pct"]
        result = again
    return result


def search(target: Target, plan: LoadPlan) -> dict[str, Any]:
    """Ascending steps until one misses the SLO, then halve the gap between the highest
    passing and the first failing step until it is within 1,000 msgs/s or an eighth of
    the passing rate (at most three more steps)."""
    steps: list[dict[str, Any]] = []
    best: int | None = None
    fail: int | None = None
    shape_limited = True
    for offered in plan.steps:
        side_rate = offered / target.connected
        if side_rate > plan.max_side_rate:
            break
        result = _step_with_retry(target, side_rate, plan)
        steps.append(result)
        if result["passes_slo"]:
            best = offered
        else:
            fail, shape_limited = offered, False
            break
    for _ in range(3):
        if best is None or fail is None or fail - best <= max(1000, best // 8):
            break
        mid = int(round((best + fail) / 2, -2))
        if not best < mid < fail:
            break
        result = _step_with_retry(target, mid / target.connected, plan)
        steps.append(result)
        if result["passes_slo"]:
            best = mid
        else:
            fail = mid
    return {
        "steps": steps,
        "highest_passing_msgs_s": best,
        "first_failing_msgs_s": fail,
        # Every step passed: the true limit is above what this load shape can offer.
        "limited_by_load_shape": shape_limited and best is not None,
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
        result["search"] = search(target, plan)
        if plan.profile_s and kind == "peerchat":
            # At the highest load it sustains: where the time goes when it is working hard,
            # without a backlog distorting the picture. The goal load comes last, as it may
            # leave a backlog behind.
            best = result["search"]["highest_passing_msgs_s"] or plan.steps[0]
            target.settle(quiet_wait_s=plan.quiet_wait_s)
            result["profile"] = profile(target, plan, best / target.connected)
        target.settle(quiet_wait_s=plan.quiet_wait_s)
        result["goal"] = target.step(plan.goal_rate, plan.goal_warmup_s, plan.goal_s, plan.drain_s)
        gen.close_sockets()
        return result
    finally:
        for server in servers:
            server.stop()
