"""A CPU-time sampler for a benchmark server, and its report.

py-spy samples wall-clock time of threads it believes active, and on this machine a web
process spends about a third of the goal load runnable but waiting for a core: those
waits land on whatever line was running when the process was preempted, mostly just after
a `send()` that woke the reader on the other end. py-spy therefore put 32-34 % of the
web process "in" `transport.write`, where perf saw 22 % of its CPU in the kernel all told.
This sampler fires on SIGPROF, which the kernel sends per slice of CPU the process *used*
(ITIMER_PROF: asked for every ms, delivered at the kernel's tick, 250 Hz on this machine),
so samples are proportional to CPU time. The stack is taken at the
next bytecode boundary, so a syscall's cost shows on the line after it.

Enable it in `python -m bench.serve` with BENCH_CPU_PROFILE=<path>,<start s>,<seconds>;
the stacks go to <path>.<pid>. Then:

    python -m bench.cpusampler /tmp/cpu.*      # self and inclusive time by function
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import threading
import time
from types import FrameType


def install(path: str, start_after_s: float, seconds: float) -> None:
    counts: collections.Counter[str] = collections.Counter()
    on = threading.Event()

    def sample(signum: int, frame: FrameType | None) -> None:
        if not on.is_set():
            return
        stack = []
        while frame is not None:
            code = frame.f_code
            stack.append(f"{code.co_name} ({os.path.basename(code.co_filename)}:{frame.f_lineno})")
            frame = frame.f_back
        counts[";".join(reversed(stack))] += 1

    signal.signal(signal.SIGPROF, sample)

    def control() -> None:
        time.sleep(start_after_s)
        on.set()
        signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
        time.sleep(seconds)
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        on.clear()
        with open(path, "w") as out:
            for stack, n in counts.items():
                out.write(f"{stack} {n}\n")

    threading.Thread(target=control, name="cpu-sampler", daemon=True).start()


def install_from_env() -> None:
    spec = os.environ.get("BENCH_CPU_PROFILE")
    if spec:
        path, start, seconds = spec.split(",")
        install(f"{path}.{os.getpid()}", float(start), float(seconds))


def report(paths: list[str], top: int = 40) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for path in paths:
        with open(path) as lines:
            for line in lines:
                stack, _, n = line.rstrip().rpartition(" ")
                count = int(n)
                total += count
                names = [f.split(":")[0] + ")" for f in stack.split(";")]
                own[names[-1]] += count
                for name in set(names):
                    inclusive[name] += count
    out = [f"{total} samples of CPU time", "", "self % | function"]
    out += [f"{100 * n / total:5.1f} | {name}" for name, n in own.most_common(top)]
    out += ["", "inclusive % | function"]
    out += [f"{100 * n / total:5.1f} | {name}" for name, n in inclusive.most_common(2 * top)]
    return "\n".join(out)


if __name__ == "__main__":
    print(report(sys.argv[1:]))
