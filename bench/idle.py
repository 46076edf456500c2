"""Memory per idle authenticated connection: RSS of one server process before and after
N sockets said `hello` and got `welcome`, divided by N."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.infra import Backends, ServerProcess, Watched, hello
from bench.loadgen import Generator
from bench.wsclient import Side

WARM = 200  # sockets opened first, so one-time costs (pools, caches, imports) fall outside


def _sides(kind: str, url: str, first: int, count: int) -> list[Side]:
    sides = []
    for i in range(first, first + count):
        if kind == "relay":
            frame = '{"type":"hello","token":"idle' + str(i) + '|member"}'
        else:
            frame = hello(f"bench-idle-m{i}", "member", "Member")
        sides.append(Side(url, frame, f"idle{i}", "member"))
    return sides


def _deal(sides: list[Side], workers: int) -> list[list[Side]]:
    return [sides[i::workers] for i in range(workers)]


def measure(
    kind: str,
    deflate: bool,
    sockets: int,
    backends: Backends,
    gen: Generator,
    artifacts: Path,
    log: Any,
) -> dict[str, Any]:
    module = "bench.serve" if kind == "peerchat" else "bench.relay"
    name = f"{kind}-deflate-{'on' if deflate else 'off'}"
    server = ServerProcess(module, backends.env(), artifacts / f"idle-{name}.log", deflate=deflate)
    server.start()
    watched = Watched(name, server.pid)
    try:
        workers = len(gen.pipes)
        gen.connect(_deal(_sides(kind, server.url, 0, WARM), workers), compression=True)
        time.sleep(2)
        before = watched.rss()
        started = time.monotonic()
        replies = gen.connect(_deal(_sides(kind, server.url, WARM, sockets), workers), compression=True)
        connect_s = time.monotonic() - started
        connected = sum(int(r["connected"]) for r in replies)
        time.sleep(3)
        after = watched.rss()
        extensions: dict[str, int] = {}
        for r in replies:
            for ext, n in r["extensions"].items():
                extensions[ext] = extensions.get(ext, 0) + n
        per = (after - before) / max(1, connected)
        log(
            f"  idle {name}: {connected} sockets, RSS {before / 2**20:.0f} → {after / 2**20:.0f} MiB, "
            f"{per / 1024:.1f} KiB per socket"
        )
        gen.close_sockets()
        return {
            "variant": name,
            "sockets": connected,
            "failed": sum(sum(r["failed"].values()) for r in replies),
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(after / 2**20, 1),
            "kib_per_socket": round(per / 1024, 1),
            "connect_s": round(connect_s, 1),
            "connects_per_s": round(connected / connect_s),
            "negotiated": extensions,
        }
    finally:
        server.stop()
