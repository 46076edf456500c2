"""`python -m bench.retention`: the retention sweep over many aged messages, alone or while
the goal chat load runs (PRODUCT.md §10, issue 17).

1. Real PostgreSQL (fsync on, as in production) and Redis in a temporary folder, migrated.
2. `--messages` messages (default 1,000,000) in conversations of `--per-conversation`
   messages, all ended 100 days ago, with feedback comments and request notes: written
   straight into the tables.
3. With `--with-load`: `--conversations` live conversations under the goal load (1 message
   per second per side, peerchat's `web` processes as `bench.serve` runs them). One goal step
   without the sweep (the baseline), then goal steps back to back while the sweep runs in
   this process on its own connection, exactly as a `web` process's background sweep does.
4. The sweep: total time, rows per second, and every batch's length (how long one
   transaction holds its rows: the bound on anything that could wait on it). Then a check
   that nothing was left half-swept and the counts survived.

Results go to test-artifacts/bench/retention-<UTC time>.json and are printed. Do not run
the full size on a shared machine while others measure: it writes about 1 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import load
from bench.infra import (
    ROOT,
    Backends,
    ServerProcess,
    Watched,
    raise_nofile_limit,
    rate_limit_is_configurable,
    seed_conversations,
)
from bench.loadgen import Generator
from chat.devservers import wipe
from chat.store.privacy import Swept
from chat.upkeep import retention

SEED_CHUNK = 100_000  # messages per INSERT, so seeding never holds one huge transaction


async def seed_aged(url: str, messages: int, per_conversation: int) -> dict[str, Any]:
    conversations = max(1, messages // per_conversation)
    began = time.monotonic()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO specialists (id, name) VALUES ('ret-s', 'Retired') ON CONFLICT (id) DO NOTHING"
        )
        await conn.execute(
            """INSERT INTO requests (id, member_id, member_alias, tags, note, state, created_at, closed_at)
               SELECT 'ret-r' || g, 'ret-m' || g, 'Member ' || g, '{grief}', 'a note ' || g, 'assigned',
                      now() - interval '101 days', now() - interval '101 days'
                 FROM generate_series(1, $1) g""",
            conversations,
        )
        await conn.execute(
            """INSERT INTO conversations (id, request_id, member_id, member_alias, specialist_id,
                                          specialist_name, tags, state, last_seq, started_at,
                                          ended_at, ended_by, end_reason)
               SELECT 'ret-c' || g, 'ret-r' || g, 'ret-m' || g, 'Member ' || g, 'ret-s', 'Retired',
                      '{grief}', 'ended', $2, now() - interval '101 days',
                      now() - interval '100 days' + g * interval '1 millisecond', 'member', 'ended'
                 FROM generate_series(1, $1) g""",
            conversations,
            per_conversation,
        )
        await conn.execute(
            """INSERT INTO feedback (conversation_id, member_id, rating, comment)
               SELECT 'ret-c' || g, 'ret-m' || g, 4, 'a comment ' || g FROM generate_series(1, $1) g""",
            conversations,
        )
        per_chunk = max(1, SEED_CHUNK // per_conversation)
        for first in range(1, conversations + 1, per_chunk):
            last = min(conversations, first + per_chunk - 1)
            await conn.execute(
                """INSERT INTO messages (conversation_id, seq, sender_id, sender_role, sender_name,
                                         client_msg_id, body, sent_at)
                   SELECT 'ret-c' || g, s,
                          CASE WHEN s % 2 = 1 THEN 'ret-m' || g ELSE 'ret-s' END,
                          CASE WHEN s % 2 = 1 THEN 'member' ELSE 'specialist' END,
                          CASE WHEN s % 2 = 1 THEN 'Member ' || g ELSE 'Retired' END,
                          'c' || s, repeat('words of an aged conversation ', 3),
                          now() - interval '100 days'
                     FROM generate_series($1::int, $2::int) g, generate_series(1, $3::int) s""",
                first,
                last,
                per_conversation,
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return {
        "conversations": conversations,
        "messages": conversations * per_conversation,
        "seed_s": round(time.monotonic() - began, 1),
    }


class Sweep:
    """The sweep in a thread of its own (its own event loop and connection), timed batch by
    batch, so the goal load can run meanwhile."""

    def __init__(self, url: str, batch_messages: int) -> None:
        self.url = url
        self.batch_messages = batch_messages
        self.batches: list[float] = []
        self.total: Swept | None = None
        self.seconds = 0.0
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="retention-sweep", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def join(self) -> None:
        self.thread.join()

    def _run(self) -> None:
        try:
            asyncio.run(self._sweep())
        except Exception as exc:  # reported in the results
            self.error = repr(exc)

    async def _sweep(self) -> None:
        conn = await asyncpg.connect(self.url)
        began = time.perf_counter()
        try:
            self.total = await retention.sweep(
                conn, 90, self.batch_messages, observe=lambda _, s: self.batches.append(s)
            )
        finally:
            self.seconds = time.perf_counter() - began
            await conn.close()

    def summary(self) -> dict[str, Any]:
        ms = sorted(b * 1000 for b in self.batches)
        total = self.total or Swept()
        return {
            "error": self.error,
            "seconds": round(self.seconds, 1),
            "conversations": total.conversations,
            "messages": total.messages,
            "requests": total.requests,
            "messages_per_s": round(total.messages / self.seconds) if self.seconds else 0,
            "batches": len(ms),
            "batch_ms": {
                "p50": round(statistics.median(ms), 1) if ms else 0,
                "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1) if ms else 0,
                "max": round(ms[-1], 1) if ms else 0,
            },
        }


async def check(url: str, expected_messages: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM messages WHERE conversation_id LIKE 'ret-c%') AS left_messages,
                      (SELECT count(*) FROM conversations WHERE id LIKE 'ret-c%' AND swept_at IS NULL)
                          AS unswept,
                      (SELECT count(*) FROM conversations WHERE id LIKE 'ret-c%'
                          AND swept_at IS NOT NULL AND (member_id <> '' OR member_alias <> '')) AS half,
                      (SELECT coalesce(sum(last_seq), 0) FROM conversations
                          WHERE id LIKE 'ret-c%') AS counted,
                      (SELECT count(*) FROM feedback WHERE conversation_id LIKE 'ret-c%'
                          AND comment IS NOT NULL) AS comments"""
        )
    finally:
        await conn.close()
    assert row is not None
    result = dict(row)
    result["ok"] = (
        result["left_messages"] == 0
        and result["unswept"] == 0
        and result["half"] == 0
        and result["comments"] == 0
        and result["counted"] == expected_messages
    )
    return result


def run_with_load(args: argparse.Namespace, backends: Backends, artifacts: Path, log: Any) -> dict[str, Any]:
    plan = load.LoadPlan(
        processes=2,
        goal_rate=1.0,
        goal_s=args.goal_s,
        goal_warmup_s=min(5.0, args.goal_s / 4),
        steps=(),
        step_s=0,
        step_warmup_s=0,
        max_side_rate=20.0 if rate_limit_is_configurable() else 4.0,
        drain_s=5,
        profile_s=0,
    )
    conversations = seed_conversations(backends.pg.url, args.conversations)
    gen = Generator(2)
    env = backends.env()
    servers = [ServerProcess("bench.serve", env, artifacts / f"retention-web-{i}.log") for i in range(2)]
    result: dict[str, Any] = {"live_conversations": len(conversations)}
    try:
        for server in servers:
            server.start()
        watched = [Watched(f"server{i}", s.pid) for i, s in enumerate(servers)]
        watched += [Watched(f"loadgen{i}", pid) for i, pid in enumerate(gen.pids)]
        assert backends.pg.proc is not None
        watched.append(Watched("postgres", backends.pg.proc.pid, children=True))
        target = load.Target("peerchat", servers, gen, watched, artifacts, log)
        replies = gen.connect(load.sides_for("peerchat", conversations, servers, len(gen.pipes)))
        target.connected = sum(int(r["connected"]) for r in replies)
        log(f"  {target.connected} live sockets")
        target.settle(quiet_wait_s=5)
        log("  goal load without the sweep (baseline)")
        result["baseline"] = target.step(plan.goal_rate, plan.goal_warmup_s, plan.goal_s, plan.drain_s)
        target.settle(quiet_wait_s=5)
        sweep = Sweep(backends.pg.url, args.batch_messages)
        log("  goal load while the sweep runs")
        sweep.start()
        during = []
        while True:
            during.append(target.step(plan.goal_rate, plan.goal_warmup_s, plan.goal_s, plan.drain_s))
            if not sweep.running:
                break
        sweep.join()
        result["during_sweep"] = during
        result["sweep"] = sweep.summary()
        gen.close_sockets()
    finally:
        gen.stop()
        for server in servers:
            server.stop()
    base = result["baseline"]["e2e_ms"]["p99"]
    worst = max(step["e2e_ms"]["p99"] for step in result["during_sweep"])
    result["e2e_p99_ms"] = {"baseline": base, "during_sweep_worst": worst}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="aged messages to sweep")
    parser.add_argument("--per-conversation", type=int, default=50, help="messages per aged conversation")
    parser.add_argument("--batch-messages", type=int, default=2000, help="PEERCHAT_RETENTION_BATCH_MESSAGES")
    parser.add_argument("--with-load", action="store_true", help="run the goal chat load meanwhile")
    parser.add_argument("--conversations", type=int, default=2000, help="live conversations under load")
    parser.add_argument("--goal-s", type=float, default=45.0, help="length of each goal-load step")
    parser.add_argument("--out", type=Path, help="results file (default test-artifacts/bench/...)")
    args = parser.parse_args(argv)
    raise_nofile_limit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "test-artifacts" / "bench" / f"retention-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    data = Path(tempfile.mkdtemp(prefix="peerchat-bench-retention-"))
    backends = Backends(data)
    try:
        backends.start()
        log(f"PostgreSQL on {backends.pg.port}")
        results["seed"] = asyncio.run(seed_aged(backends.pg.url, args.messages, args.per_conversation))
        log(f"seeded {results['seed']}")
        if args.with_load:
            results["load"] = run_with_load(args, backends, out.parent, log)
            results["sweep"] = results["load"].pop("sweep")
        else:
            sweep = Sweep(backends.pg.url, args.batch_messages)
            sweep.start()
            sweep.join()
            results["sweep"] = sweep.summary()
        log(f"sweep: {results['sweep']}")
        results["check"] = asyncio.run(check(backends.pg.url, results["seed"]["messages"]))
        log(f"check: {results['check']}")
    finally:
        backends.stop()
        wipe(data)
    results["elapsed_s"] = round(time.monotonic() - began)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps({k: results[k] for k in ("seed", "sweep", "check")}, indent=2, default=str))
    if "load" in results:
        print(json.dumps(results["load"]["e2e_p99_ms"]))
    log(f"done; results in {out}")
    if not results["check"]["ok"] or results["sweep"]["error"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
