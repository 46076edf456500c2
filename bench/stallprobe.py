"""Where a benchmark server's event loop stalls, and when: for lining stalls up with the
generator's timeline of slow messages (docs/performance.md, round 10, tail).

Enabled in `python -m bench.serve` with BENCH_STALL_LOG=<path>; one JSON line per event
goes to <path>.<pid>, stamped with CLOCK_MONOTONIC (one clock for every process of the
machine, the generator's too):

- `gc`: every collection of generation 1 or 2, and any of generation 0 over 2 ms, with its
  duration and how many objects it found unreachable;
- `stall`: the loop did not run a 5 ms heartbeat for over `STALL_MS`; with what the main
  thread was running meanwhile, sampled every 5 ms from a thread (a stall inside one C
  call that holds the GIL shows as the line after it, or not at all: `gc` covers the
  collector).

    python -m bench.stallprobe /tmp/stalls.*   # a summary of every file
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

STALL_MS = 20
HEARTBEAT_S = 0.005


class Probe:
    def __init__(self, path: str) -> None:
        self.out: TextIO = open(f"{path}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115
        self.lock = threading.Lock()
        self.beat = time.monotonic_ns()
        self.beat_cpu = time.thread_time_ns()  # the loop thread's CPU time at the last beat
        self.gc_started = 0
        self.gc_cpu = 0
        self.main = threading.main_thread().ident

    def write(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.out.write(json.dumps(event) + "\n")

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic_ns()
        cpu = time.thread_time_ns()
        if phase == "start":
            self.gc_started, self.gc_cpu = now, cpu
            return
        took = now - self.gc_started
        generation = info.get("generation", 0)
        if generation > 0 or took > 2_000_000:
            self.write(
                {
                    "kind": "gc",
                    "at_ns": self.gc_started,
                    "ms": round(took / 1e6, 2),
                    "cpu_ms": round((cpu - self.gc_cpu) / 1e6, 2),
                    "generation": generation,
                    "collected": info.get("collected", 0),
                }
            )

    def heartbeat(self, loop: asyncio.AbstractEventLoop) -> None:
        self.beat = time.monotonic_ns()
        self.beat_cpu = time.thread_time_ns()
        loop.call_later(HEARTBEAT_S, self.heartbeat, loop)

    def watch(self) -> None:
        limit = (STALL_MS + HEARTBEAT_S * 1000) * 1_000_000
        stalled_since = 0
        cpu_since = 0
        stacks: collections.Counter[str] = collections.Counter()
        while True:
            time.sleep(HEARTBEAT_S)
            beat, beat_cpu = self.beat, self.beat_cpu
            now = time.monotonic_ns()
            if now - beat > limit:
                if not stalled_since:
                    stalled_since, cpu_since = beat, beat_cpu
                frame = sys._current_frames().get(self.main or 0)
                stacks[_where(frame)] += 1
            elif stalled_since:
                self.write(
                    {
                        "kind": "stall",
                        "at_ns": stalled_since,
                        "ms": round((beat - stalled_since) / 1e6, 1),
                        # The loop thread's own CPU in the stall: near `ms` when it was
                        # busy, near 0 when it waited for a core (others' work).
                        "cpu_ms": round((beat_cpu - cpu_since) / 1e6, 1),
                        "where": stacks.most_common(5),
                    }
                )
                stalled_since = 0
                stacks.clear()


def _where(frame: Any) -> str:
    parts: list[str] = []
    while frame is not None and len(parts) < 6:
        code = frame.f_code
        parts.append(f"{code.co_name} ({os.path.basename(code.co_filename)}:{frame.f_lineno})")
        frame = frame.f_back
    return " < ".join(parts)


def install(path: str) -> None:
    """Call from inside the running loop (the app factory)."""
    probe = Probe(path)
    gc.callbacks.append(probe.on_gc)
    probe.heartbeat(asyncio.get_running_loop())
    threading.Thread(target=probe.watch, name="stallprobe", daemon=True).start()


def asgi() -> Any:
    """`chat.app:asgi` with the probe installed (uvicorn calls the factory in its loop)."""
    from chat.app import asgi as app

    install(os.environ["BENCH_STALL_LOG"])
    return app()


def summarize(paths: list[str]) -> None:
    for path in paths:
        events = [json.loads(line) for line in Path(path).read_text().splitlines()]
        gcs = [e for e in events if e["kind"] == "gc"]
        stalls = [e for e in events if e["kind"] == "stall"]
        print(f"{path}: {len(gcs)} collections logged, {len(stalls)} stalls over {STALL_MS} ms")
        by_gen: dict[int, list[float]] = collections.defaultdict(list)
        for e in gcs:
            by_gen[e["generation"]].append(e["ms"])
        for generation, times in sorted(by_gen.items()):
            print(f"  gen {generation}: {len(times)}, max {max(times)} ms, sum {sum(times):.0f} ms")
        for e in sorted(gcs, key=lambda e: -e.get("cpu_ms", 0))[:5]:
            at = e["at_ns"] / 1e9
            print(f"  gc gen {e['generation']} {e.get('cpu_ms')} ms CPU ({e['ms']} ms) at {at:.3f}")
        for e in sorted(stalls, key=lambda e: -e.get("cpu_ms", 0))[:10]:
            at = e["at_ns"] / 1e9
            print(f"  stall {e.get('cpu_ms')} ms CPU ({e['ms']} ms) at {at:.3f}: {e['where'][:2]}")


if __name__ == "__main__":
    summarize(sys.argv[1:])
