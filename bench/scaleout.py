"""Scale-out: throughput and latency with 1, 2 and 4 web processes, against one Redis and
against a 3-master Redis Cluster (issue 19, docs/scaling.md).

Both Redis topologies are Debian's Redis 7 (chat/devredis/), so the comparison is of
topology, not version. One durable PostgreSQL. For each (topology, processes): the web
processes start fresh, both sockets of each seeded conversation land on processes at
random (as behind a load balancer), and the open-loop load of bench/load.py climbs a short
ladder of rates, each step after a settle and a discarded warm-up, up to the first step
that delivers under 85 % of what is offered (saturated: its delivered rate is the
ceiling). Every step records delivered msgs/s, e2e p50/p99, and the CPU of every
process (each web process, PostgreSQL's tree, every Redis node, the load generator, and
whatever else ran on the machine meanwhile).

    python -m bench.scaleout [--processes 1,2,4] [--redis single,cluster]
                             [--conversations 500] [--rates 1000,2000,3000,4000,6000]
                             [--step-s 8] [--out test-artifacts/scaleout]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.infra import (
    JWT_SECRET,
    Conversation,
    ServerProcess,
    Watched,
    _migrate,
    raise_nofile_limit,
    seed_conversations,
)
from bench.load import SLO_MS, Target, sides_for
from bench.loadgen import Generator
from chat.devredis import RedisClusterSet, RedisNode, redis7_bin
from chat.devservers import PostgresServer, wipe

WARMUP_S = 2.0
DRAIN_S = 3.0


def _env(database_url: str, redis_url: str, partitions: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEERCHAT_")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PEERCHAT_BUS_PARTITIONS=str(partitions),
        PEERCHAT_JWT_SECRET=JWT_SECRET,
        PEERCHAT_HOST="127.0.0.1",
        PEERCHAT_LOG_LEVEL="warning",
        PEERCHAT_RATE_LIMIT_PER_10S="100000",
        PYTHONUNBUFFERED="1",
    )
    return env


def _row(topology: str, processes: int, step: dict[str, Any]) -> dict[str, Any]:
    cpu: dict[str, float] = step.get("cpu_pct") or {}
    return {
        "redis": topology,
        "processes": processes,
        "offered_msgs_s": step["offered_msgs_s"],
        "delivered_msgs_s": step["delivered_msgs_s"],
        "e2e_p50_ms": step["e2e_ms"]["p50"],
        "e2e_p99_ms": step["e2e_ms"]["p99"],
        "passes": step["passes_slo"],
        "undelivered": step["undelivered"],
        "server_cpu_us_per_msg": step["server_cpu_us_per_msg"],
        "web_cpu_pct": [v for k, v in sorted(cpu.items()) if k.startswith("server")],
        "postgres_cpu_pct": cpu.get("postgres", 0.0),
        "redis_cpu_pct": round(sum(v for k, v in cpu.items() if k.startswith("redis")), 1),
        "loadgen_cpu_pct": round(sum(v for k, v in cpu.items() if k.startswith("loadgen")), 1),
        "other_cpu_pct": step.get("other_cpu_pct"),
        "machine_busy_pct": step.get("machine_busy_pct"),
    }


def run_one(
    topology: str,
    processes: int,
    database_url: str,
    redis_url: str,
    redis_watched: list[Watched],
    pg_pid: int,
    gen: Generator,
    conversations: list[Conversation],
    rates: list[int],
    step_s: float,
    artifacts: Path,
    log: Any,
    partitions: int = 32,
    rings: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    env = _env(database_url, redis_url, partitions)
    servers = [
        ServerProcess("bench.serve", env, artifacts / f"{topology}-{processes}p-{i}.log")
        for i in range(processes)
    ]
    rows: list[dict[str, Any]] = []
    try:
        for server in servers:
            server.start()
        watched = [Watched(f"server{i}", s.pid) for i, s in enumerate(servers)]
        watched += [Watched(f"loadgen{i}", pid) for i, pid in enumerate(gen.pids)]
        watched.append(Watched("postgres", pg_pid, children=True))
        watched += redis_watched
        target = Target("peerchat", servers, gen, watched, artifacts, log)
        replies = gen.connect(sides_for("peerchat", conversations, servers, len(gen.pipes)))
        target.connected = sum(int(r["connected"]) for r in replies)
        log(f"{topology}, {processes} web process(es): {target.connected} sockets")
        for rate in rates:
            target.settle(quiet_wait_s=3.0, pause_s=0.5)
            step = target.step(rate / target.connected, WARMUP_S, step_s, DRAIN_S)
            row = _row(topology, processes, step)
            rows.append(row)
            log(
                f"  {rate:6d} offered: delivered {row['delivered_msgs_s']}/s, p50/p99 "
                f"{row['e2e_p50_ms']}/{row['e2e_p99_ms']} ms, web cpu% {row['web_cpu_pct']}, "
                f"pg {row['postgres_cpu_pct']}%, redis {row['redis_cpu_pct']}%, "
                f"loadgen {row['loadgen_cpu_pct']}%, others {row['other_cpu_pct']}%, "
                f"{row['server_cpu_us_per_msg']} µs/msg"
            )
            if step["delivered_msgs_s"] < 0.85 * step["offered_msgs_s"]:
                break  # saturated: what it delivers is its ceiling here
        if topology == "cluster" and rings is not None:
            rings.append(_rings(servers, partitions, log))
        gen.close_sockets()
    finally:
        for server in servers:
            server.stop()
    return rows


_RING_GAUGES = (
    "peerchat_bus_rings_published",
    "peerchat_bus_rings_heard",
    "peerchat_bus_rings_for_others",
    "peerchat_bus_partitions_subscribed",
)


def _rings(servers: list[ServerProcess], partitions: int, log: Any) -> dict[str, Any]:
    """Rings each web process heard on its cluster bus partitions over the whole ladder,
    against all rings published (what each would hear if it subscribed every partition)."""
    per: list[dict[str, float]] = []
    for server in servers:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in _RING_GAUGES:
                values[name.removeprefix("peerchat_bus_").removeprefix("rings_")] = float(value)
        per.append(values)
    published = sum(p.get("published", 0.0) for p in per)
    heard = [p.get("heard", 0.0) for p in per]
    result = {
        "processes": len(servers),
        "partitions": partitions,
        "published": published,
        "heard": heard,
        "for_others": [p.get("for_others", 0.0) for p in per],
        "heard_share": [round(h / published, 3) if published else None for h in heard],
        "partitions_subscribed": [p.get("partitions_subscribed", 0.0) for p in per],
    }
    log(
        f"  rings: {published:.0f} published; each process heard {result['heard_share']} of them, "
        f"subscribed to {result['partitions_subscribed']} of {partitions} partitions"
    )
    return result


COLUMNS = (
    "Redis",
    "web processes",
    "offered msg/s",
    "delivered msg/s",
    "e2e p50 / p99 ms",
    "p99 ≤ 50 ms, none lost",
    "server CPU µs/msg",
    "each web process % of a core",
    "PostgreSQL %",
    "Redis % (all nodes)",
    "load generator %",
    "others %",
)


def render(rows: list[dict[str, Any]]) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [
            r["redis"],
            r["processes"],
            r["offered_msgs_s"],
            r["delivered_msgs_s"],
            f"{r['e2e_p50_ms']} / {r['e2e_p99_ms']}",
            "yes" if r["passes"] else "no",
            r["server_cpu_us_per_msg"],
            " / ".join(str(x) for x in r["web_cpu_pct"]),
            r["postgres_cpu_pct"],
            r["redis_cpu_pct"],
            r["loadgen_cpu_pct"],
            r["other_cpu_pct"],
        ]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--redis", default="single,cluster")
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--rates", default="1000,2000,3000,4000,6000", help="offered msgs/s, whole run")
    parser.add_argument("--step-s", type=float, default=8.0, help="each step, warm-up included")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--out", default="test-artifacts/scaleout")
    parser.add_argument("--partitions", type=int, default=32, help="PEERCHAT_BUS_PARTITIONS (cluster)")
    args = parser.parse_args(argv)
    redis7_bin("redis-server")
    raise_nofile_limit()
    artifacts = Path(args.out).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    log_file = (artifacts / "log.txt").open("a")

    def log(line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        print(stamped, flush=True)
        log_file.write(stamped + "\n")
        log_file.flush()

    rows: list[dict[str, Any]] = []
    rings: list[dict[str, Any]] = []
    rates = [int(r) for r in args.rates.split(",")]
    data = Path(tempfile.mkdtemp(prefix="peerchat-scaleout-"))
    try:
        for topology in args.redis.split(","):
            with ExitStack() as stack:
                pg = PostgresServer(data / f"pg-{topology}", durable=True)
                pg.start()
                stack.callback(pg.stop)
                asyncio.run(_migrate(pg.url))
                if topology == "single":
                    node = RedisNode(data / "redis-single")
                    node.start()
                    stack.callback(node.stop)
                    redis_url = node.url
                    nodes = [node]
                elif topology == "cluster":
                    cluster = RedisClusterSet(data / "redis-cluster")
                    cluster.start()
                    stack.callback(cluster.stop)
                    redis_url = cluster.url
                    nodes = cluster.nodes
                else:
                    raise SystemExit(f"--redis: single or cluster, not {topology!r}")
                redis_watched = [Watched(f"redis{i}", n.proc.pid) for i, n in enumerate(nodes) if n.proc]
                assert pg.proc is not None
                conversations = seed_conversations(pg.url, args.conversations)
                gen = Generator(args.workers)
                stack.callback(gen.stop)
                for processes in (int(p) for p in args.processes.split(",")):
                    rows += run_one(
                        topology,
                        processes,
                        pg.url,
                        redis_url,
                        redis_watched,
                        pg.proc.pid,
                        gen,
                        conversations,
                        rates,
                        args.step_s,
                        artifacts,
                        log,
                        args.partitions,
                        rings,
                    )
                    (artifacts / "results.json").write_text(json.dumps(rows, indent=2))
                    (artifacts / "rings.json").write_text(json.dumps(rings, indent=2))
    finally:
        wipe(data)
    table = render(rows)
    (artifacts / "summary.md").write_text(table)
    print(table)
    print(f"(SLO p99 ≤ {SLO_MS:.0f} ms; results in {artifacts})")


if __name__ == "__main__":
    main()
