"""py-spy on a server process under load, and a summary of where its CPU time went.

py-spy samples the process from outside (100 Hz, `--nonblocking`: it reads the stacks
without pausing the process, so latency under the profiler stays near the real thing) and
writes collapsed stacks (`frame;frame;... count`, root first). Samples are wall-clock
over time the thread is runnable: a thread preempted inside a system call is counted
there. On two shared cores that is most of `_SelectorSocketTransport.write`'s share: a
`send` wakes the reader on the other end, which takes the core (the bench reports the
time each process waited for a core beside its CPU). `summarize` attributes each sample
to the deepest Python frame and reports by module, by function (self time) and by the
project's own functions (inclusive time).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.infra import ROOT

_FRAME = re.compile(r"^(?P<func>.*) \((?P<where>[^()]*)\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, *, native: bool = False) -> subprocess.Popen[bytes]:
    """Start sampling; the returned process ends by itself after `seconds`."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    args = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100"]
    args += ["--format", "raw", "--output", str(out)]
    # --native cannot be combined with --nonblocking: each sample pauses the server briefly,
    # so latency measured under the profiler is reported apart and not used elsewhere.
    args.append("--native" if native else "--nonblocking")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _split(frame: str) -> tuple[str, str, str] | None:
    """(function, file, module bucket) for a Python frame; None for a native one."""
    m = _FRAME.match(frame)
    if m is None:
        return None
    where = m.group("where")
    path, _, _line = where.rpartition(":")
    if not path.endswith(".py"):
        return None
    return m.group("func"), path, _bucket(path)


def _bucket(path: str) -> str:
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    root = str(ROOT) + "/"
    if path.startswith(root) or not path.startswith("/"):
        return path.removeprefix(root)
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 1)[1]
        top = rest.split("/", 1)[0].removesuffix(".py")
        return f"stdlib {top}"
    return path


def summarize(raw: Path, top: int = 25) -> dict[str, Any]:
    by_module: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    native_leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        deepest: tuple[str, str, str] | None = None
        seen: set[str] = set()
        for frame in frames:
            parsed = _split(frame)
            if parsed is None:
                continue
            deepest = parsed
            func, _path, bucket = parsed
            if bucket.startswith(("chat/", "protocol/", "matching/")):
                name = f"{bucket}:{func}"
                if name not in seen:  # recursion counts once
                    seen.add(name)
                    inclusive[name] += count
        if deepest is None:
            by_module["(no Python frame)"] += count
        else:
            func, _path, bucket = deepest
            by_module[bucket] += count
            by_function[f"{bucket}:{func}"] += count
        leaf = frames[-1]
        if _split(leaf) is None:
            m = _FRAME.match(leaf)
            native_leaf[(m.group("func") if m else leaf)[:60]] += count

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / max(1, total), 1)) for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "by_module": pct(by_module),
        "by_function_self": pct(by_function),
        "project_inclusive": pct(inclusive),
        "native_leaf": pct(native_leaf),
    }
