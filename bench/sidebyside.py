"""Two code trees under one load at once: web CPU per delivered message of each, side by side.

On a shared machine, run one after the other, the same code reads ±25 % from round to
round: how busy the box is sets the commit batch and how many events each loop turn
handles, and both set the CPU per message (docs/performance.md, round 9, webcpu). Here
two `web` processes of each tree run at the same time on one PostgreSQL and Redis, each
pair serving half of the seeded conversations (the halves alternate pair by pair, so both
generator workers drive both trees, and swap every round), so whatever else the box does
falls on both alike. Each round prints, per tree, the pair's web CPU seconds over the
measured window divided by the messages it delivered (half of all), and their ratio.

    python -m bench.sidebyside --trees base=/tmp/base,new=. [--rounds 3]
        [--conversations 1000] [--rate 1.0] [--seconds 12] [--env-b NAME=VALUE,...]

A tree is a checkout of this repository (a `git clone --shared` at the commit to compare);
its servers run `python -m bench.serve` from that directory with this environment's
packages. `--kind relay` compares two relays instead (bench/relay.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bench.infra as infra
from bench.infra import Backends, ServerProcess, Watched, raise_nofile_limit, seed_conversations
from bench.load import Target, sides_for
from bench.loadgen import Generator
from bench.wsclient import Side


def _tree(spec: str) -> tuple[str, Path]:
    name, _, path = spec.partition("=")
    if not name or not path:
        raise argparse.ArgumentTypeError(f"not NAME=PATH: {spec!r}")
    return name, Path(path).resolve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sidebyside")
    parser.add_argument("--trees", required=True, help="A=PATH,B=PATH")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0, help="messages per second per side")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured, after a 3 s warm-up")
    parser.add_argument("--kind", choices=("peerchat", "relay"), default="peerchat")
    parser.add_argument("--env-b", default="", help="NAME=VALUE,... for the second tree's servers")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    specs = [_tree(s) for s in args.trees.split(",")]
    if len(specs) != 2 or specs[0][0] == specs[1][0]:
        parser.error("--trees names two trees with different names")
    env_b = dict(pair.split("=", 1) for pair in args.env_b.split(",") if pair)
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="peerchat-sidebyside-"))
    out.mkdir(parents=True, exist_ok=True)
    raise_nofile_limit()
    data = Path(tempfile.mkdtemp(prefix="peerchat-sidebyside-data-"))
    backends = Backends(data)
    backends.start()
    gen: Generator | None = None
    results: list[dict[str, Any]] = []
    try:
        conversations = seed_conversations(backends.pg.url, args.conversations)
        gen = Generator(2)
        for r in range(args.rounds):
            row = _round(r, args, specs, env_b, backends, gen, conversations, out)
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if gen is not None:
            gen.stop()
        backends.stop()
        shutil.rmtree(data, ignore_errors=True)  # PostgreSQL's files: nothing to keep
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"results: {out / 'results.json'}")


def _round(
    r: int,
    args: argparse.Namespace,
    specs: list[tuple[str, Path]],
    env_b: dict[str, str],
    backends: Backends,
    gen: Generator,
    conversations: list[infra.Conversation],
    out: Path,
) -> dict[str, Any]:
    module = "bench.relay" if args.kind == "relay" else "bench.serve"
    names = [name for name, _ in specs]
    servers: dict[str, list[ServerProcess]] = {}
    root = infra.ROOT
    try:
        for (name, path), extra in zip(specs, ({}, env_b), strict=True):
            infra.ROOT = path  # ServerProcess starts `python -m module` from here
            group = servers[name] = [
                ServerProcess(module, backends.env(**extra), out / f"{name}-{r}-{i}.log") for i in range(2)
            ]
            for server in group:
                server.start()
        infra.ROOT = root
        every = [s for name in names for s in servers[name]]
        watched = [
            Watched(f"server-{name}-{i}", s.pid) for name in names for i, s in enumerate(servers[name])
        ]
        watched += [Watched(f"loadgen{i}", pid) for i, pid in enumerate(gen.pids)]
        if args.kind == "peerchat":
            assert backends.pg.proc is not None and backends.redis.proc is not None
            watched.append(Watched("postgres", backends.pg.proc.pid, children=True))
            watched.append(Watched("redis", backends.redis.proc.pid))
        target = Target(args.kind, every, gen, watched, out, lambda *_: None)
        halves: dict[str, list[infra.Conversation]] = {name: [] for name in names}
        for i, c in enumerate(conversations):
            halves[names[((i // 2) + r) % 2]].append(c)
        shares: list[list[Side]] = [[], []]
        for name in names:
            for worker, share in enumerate(sides_for(args.kind, halves[name], servers[name], 2)):
                shares[worker].extend(share)
        replies = gen.connect(shares)
        target.connected = sum(int(reply["connected"]) for reply in replies)
        target.settle(quiet_wait_s=3, pause_s=0.5)
        target.step(args.rate, 3, 6, 3)  # warm-up: caches, plans, pools
        target.settle(quiet_wait_s=3, pause_s=0.5)
        step = target.step(args.rate, 3, 3 + args.seconds, 5)
        gen.close_sockets()
    finally:
        infra.ROOT = root
        for group in servers.values():
            for server in group:
                server.stop()
    cpu: dict[str, float] = step.get("cpu_s") or {}
    delivered = max(1, int(step["counts"]["delivered_in_window"]))
    row: dict[str, Any] = {
        "round": r,
        "delivered": delivered,
        "errors": step["errors"],
        "undelivered": step["undelivered"],
        "others_cpu_pct": step.get("other_cpu_pct"),
        "e2e_p50_p99_ms": [step["e2e_ms"]["p50"], step["e2e_ms"]["p99"]],
    }
    if "server_metrics" in step:
        row["commit_batch_mean"] = [m.get("commit_batch_mean") for m in step["server_metrics"]]
    for name in names:
        seconds = sum(v for k, v in cpu.items() if k.startswith(f"server-{name}-"))
        row[f"{name}_web_us_per_msg"] = round(seconds * 1e6 / (delivered / 2), 1)
    row["ratio"] = round(row[f"{names[1]}_web_us_per_msg"] / max(1e-9, row[f"{names[0]}_web_us_per_msg"]), 3)
    return row


if __name__ == "__main__":
    main()
