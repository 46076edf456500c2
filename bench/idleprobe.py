"""`python -m bench.idleprobe`: the benchmark's idle window, repeated, with what it is made of.

The same set-up as `make bench`'s idle CPU figure (bench/load.py, `Target.idle`): fresh
PostgreSQL and Redis, 2,000 seeded conversations, two web processes, 4,000 authenticated
silent sockets, settled; then `--windows` windows of `--seconds` each. Per window it prints
the server side's CPU (% of a core: web processes, PostgreSQL, Redis; each process's too),
each process's wakes per second (voluntary context switches: on a virtual machine a wake
costs ~100 µs of CPU whatever the process then does, docs/performance.md round 11), the
Redis commands run and PostgreSQL's transactions. `--spy`: py-spy raw profiles of both web
processes over all the windows (1 kHz, nonblocking), in `--out`.

    python -m bench.idleprobe [--windows 3] [--seconds 20] [--age-s 15] [--spy] [--out DIR]

`--age-s`: wait after seeding (the benchmark's conversations are ~15 s old when its
servers start, so the delivery repair's first rounds read them as recent starts).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import redis

from bench import load
from bench.infra import Backends, ServerProcess, Watched, raise_nofile_limit, seed_conversations
from bench.loadgen import Generator
from chat.devservers import wipe

CONVERSATIONS = 2000
_SPY = [str(Path(sys.executable).with_name("py-spy")), "record", "-r", "1000", "-f", "raw", "--nonblocking"]
PROCESSES = 2


def wakes(pid: int, children: bool = False) -> int:
    """Voluntary context switches so far of every thread of `pid` (and of its children):
    how many times it went to sleep, so how many times it was woken."""
    pids = [pid]
    if children:
        try:
            pids += [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
    total = 0
    for one in pids:
        for status in Path(f"/proc/{one}/task").glob("*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue  # a thread or a backend that just ended
            total += voluntary_switches(text)
    return total


def voluntary_switches(status: str) -> int:
    """`voluntary_ctxt_switches` of a /proc/<pid>/task/<tid>/status text (0 if absent)."""
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


async def _pg_transactions(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT sum(xact_commit) FROM pg_stat_database") or 0)
    finally:
        await conn.close()


def _redis_calls(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def probe(windows: int, seconds: float, age_s: float, spy: bool, out: Path) -> None:
    raise_nofile_limit()
    out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="peerchat-idleprobe-"))
    backends = Backends(data)
    gen: Generator | None = None
    servers: list[ServerProcess] = []
    try:
        backends.start()
        conversations = seed_conversations(backends.pg.url, CONVERSATIONS)
        time.sleep(age_s)
        gen = Generator(PROCESSES)
        servers = [
            ServerProcess("bench.serve", backends.env(), out / f"web-{i}.log") for i in range(PROCESSES)
        ]
        for server in servers:
            server.start()
        assert backends.pg.proc is not None and backends.redis.proc is not None
        watched = [Watched(f"server{i}", s.pid) for i, s in enumerate(servers)]
        watched += [Watched(f"loadgen{i}", pid) for i, pid in enumerate(gen.pids)]
        watched.append(Watched("postgres", backends.pg.proc.pid, children=True))
        watched.append(Watched("redis", backends.redis.proc.pid))
        target = load.Target("peerchat", servers, gen, watched, out, print)
        replies = gen.connect(load.sides_for("peerchat", conversations, servers, len(gen.pipes)))
        target.connected = sum(int(r["connected"]) for r in replies)
        print(f"{target.connected} sockets connected", flush=True)
        target.settle(quiet_wait_s=5, pause_s=1)
        spies = [
            subprocess.Popen(
                [*_SPY, "-p", str(s.pid), "-d", str(int(windows * seconds)), "-o", str(out / f"spy{i}.txt")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i, s in enumerate(servers)
            if spy
        ]
        woken = {f"server{i}": (s.pid, False) for i, s in enumerate(servers)}
        woken["postgres"] = (backends.pg.proc.pid, True)
        woken["redis"] = (backends.redis.proc.pid, False)
        client = redis.Redis.from_url(backends.redis.url)
        for window in range(windows):
            wakes_before = {name: wakes(*w) for name, w in woken.items()}
            calls_before, xacts_before = _redis_calls(client), asyncio.run(_pg_transactions(backends.pg.url))
            result = target.idle(seconds)
            wakes_after = {name: wakes(*w) for name, w in woken.items()}
            calls_after, xacts_after = _redis_calls(client), asyncio.run(_pg_transactions(backends.pg.url))
            per_s = {n: round((wakes_after[n] - wakes_before[n]) / seconds, 1) for n in woken}
            calls = {
                k: v - calls_before.get(k, 0) for k, v in calls_after.items() if v > calls_before.get(k, 0)
            }
            print(f"window {window}: server side {result['server_cpu_pct']} % of a core {result['cpu_pct']}")
            print(f"  wakes/s {per_s}")
            print(
                f"  redis commands {calls}; PostgreSQL transactions {xacts_after - xacts_before}", flush=True
            )
        client.close()
        for one in spies:
            one.wait()
    finally:
        for server in servers:
            server.stop()
        if gen is not None:
            gen.stop()
        backends.stop()
        wipe(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idleprobe", description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="one window (the bench's is 20 s)")
    parser.add_argument("--age-s", type=float, default=15.0, help="wait after seeding")
    parser.add_argument("--spy", action="store_true", help="py-spy raw profiles of the web processes")
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/idleprobe"))
    args = parser.parse_args(argv)
    probe(args.windows, args.seconds, args.age_s, args.spy, args.out)


if __name__ == "__main__":
    main()
