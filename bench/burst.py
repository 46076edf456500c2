"""A burst of members asking at once (issue 20): N specialists online and available, then
N members each send `request` at a random moment within a couple of seconds; every
specialist accepts each offer the moment it arrives. Measured per member: from when its
`request` was due to its `conversation_started`, and whether every member was matched.

Fresh `web` processes on the run's PostgreSQL and Redis; specialists get the profile a
first connection creates (`max_chats` 3, languages `en`) and say `availability available`;
members ask with no tags and no language (anyone fits). Sockets land on processes at
random, as behind a load balancer; the generator's worker processes hold them.

The relay's baseline (bench/relay.py) does the same frames with the simplest matching
there is (first free specialist), so its figure is what the sockets and the generator
cost: the floor under peerchat's.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from bench.infra import Backends, CpuMeter, ServerProcess, Watched, hello
from bench.loadgen import Generator
from bench.wsclient import Side

_QS = (("p10", 10), ("p50", 50), ("p90", 90), ("p99", 99))


def _deal(sides: list[Side], workers: int) -> list[list[Side]]:
    return [sides[i::workers] for i in range(workers)]


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n p / 100), at least 1
    return sorted_values[int(rank) - 1]


def wait_figures(matched_s: list[float], asked: int, timeout_s: float) -> dict[str, float | None]:
    """p50/p99/max/mean of every member's wait. A member not matched by the timeout waited
    at least that long: its wait counts as the timeout, so the figures are then lower
    bounds, never those of a flattering subset."""
    waits = sorted(matched_s) + [timeout_s] * max(0, asked - len(matched_s))
    p50, p99 = percentile(waits, 50), percentile(waits, 99)
    return {
        "p50": None if p50 is None else round(p50, 3),
        "p99": None if p99 is None else round(p99, 3),
        "max": round(waits[-1], 3) if waits else None,
        "mean": round(sum(waits) / len(waits), 3) if waits else None,
    }


def measure(
    kind: str,
    members: int,
    specialists: int,
    spread_s: float,
    timeout_s: float,
    processes: int,
    backends: Backends,
    gen: Generator,
    artifacts: Path,
    log: Any,
) -> dict[str, Any]:
    env = backends.env()
    module = "bench.serve" if kind == "peerchat" else "bench.relay"
    servers = [ServerProcess(module, env, artifacts / f"burst-{kind}-{i}.log") for i in range(processes)]
    rng = random.Random(11)
    workers = len(gen.pipes)
    try:
        for server in servers:
            server.start()
        assert backends.pg.proc is not None and backends.redis.proc is not None
        watched = [Watched(f"server{i}", s.pid) for i, s in enumerate(servers)]
        watched += [Watched(f"loadgen{i}", pid) for i, pid in enumerate(gen.pids)]
        if kind == "peerchat":
            watched.append(Watched("postgres", backends.pg.proc.pid, children=True))
            watched.append(Watched("redis", backends.redis.proc.pid))

        def url(i: int) -> str:
            # The relay has no bus: a member and the specialists it may meet share a process.
            if kind == "relay":
                return servers[i % len(servers)].url
            return servers[rng.randrange(len(servers))].url

        def greet(sub: str, role: str, name: str) -> str:
            if kind == "relay":
                return '{"type":"hello","token":"' + sub + "|" + role + '"}'
            return hello(sub, role, name)

        staff = [
            Side(url(i), greet(f"bench-burst-s{i}", "specialist", f"Burst specialist {i}"), "", "specialist")
            for i in range(specialists)
        ]
        started = time.monotonic()
        replies = gen.connect(_deal(staff, workers))
        on = gen.available()
        ready = sum(r["available"] for r in on)
        people = [
            Side(url(i), greet(f"bench-burst-m{i}", "member", f"Burst member {i}"), "", "member")
            for i in range(members)
        ]
        replies += gen.connect(_deal(people, workers))
        connected = sum(int(r["connected"]) for r in replies)
        connect_s = time.monotonic() - started
        log(
            f"  burst {kind}: {connected} sockets in {connect_s:.1f} s, "
            f"{ready} of {specialists} specialists available"
        )
        # Let the servers finish what connecting started (presence, the matchmaker's view).
        time.sleep(2.0)
        meter = CpuMeter(watched)
        meter.start()
        began = time.monotonic()
        results = gen.request_burst(spread_s, timeout_s)
        wall = time.monotonic() - began
        usage = meter.stop()
        matched = [w / 1e6 for r in results for w in r["waits_us"]]
        asked = sum(r["members"] for r in results)
        errors: dict[str, int] = {}
        frames: dict[str, int] = {}
        for r in results:
            for code, n in r["error_codes"].items():
                errors[code] = errors.get(code, 0) + n
            for kind_seen, n in r["frames"].items():
                frames[kind_seen] = frames.get(kind_seen, 0) + n

        def phase(key: str) -> dict[str, float | None]:
            values = sorted(v / 1e6 for r in results for v in r.get(key, ()))
            return {q: None if (v := percentile(values, p)) is None else round(v, 3) for q, p in _QS}

        out = {
            "kind": kind,
            "members": asked,
            "specialists_available": ready,
            "spread_s": spread_s,
            "matched": len(matched),
            "unmatched": asked - len(matched),
            "timeout_s": timeout_s,
            "wait_s": wait_figures(matched, asked, timeout_s),
            "wall_s": round(wall, 1),
            # Where the time went, in s: request → `queued`; each offer's arrival after the
            # burst began; a specialist's `accept` → their `conversation_started`.
            "phases_s": {
                "queued": phase("queued_us"),
                "offer_at": phase("offer_at_us"),
                "accept": phase("accept_us"),
            },
            "offers": sum(r["offers"] for r in results),
            "queued": sum(r["queued"] for r in results),
            "queue_updates": sum(r["queue_updates"] for r in results),
            "error_codes": errors,
            "unexpected_closes": sum(r["unexpected_closes"] for r in results),
            "frames": frames,
            "connect_s": round(connect_s, 1),
            # The generator's own lateness sending the requests: it must not be the bottleneck.
            "generator_send_lag_p99_ms": round(max(r["send_lag_p99_us"] for r in results) / 1000, 1),
            "cpu_pct": usage["cpu_pct"],
            "machine_busy_pct": usage["machine_busy_pct"],
            "other_cpu_pct": usage["other_cpu_pct"],
        }
        log(
            f"  burst {kind}: {len(matched)}/{asked} matched, request → conversation_started "
            f"{out['wait_s']} s; {out['queue_updates']} queue updates, "
            f"phases {out['phases_s']}, "
            f"errors {errors}, closes {out['unexpected_closes']}, frames {frames}, cpu% {usage['cpu_pct']}"
        )
        gen.close_sockets()
        return out
    finally:
        for server in servers:
            server.stop()
