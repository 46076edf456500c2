"""PostgreSQL's own maintenance, read back from its log: which autovacuum runs and
checkpoints overlapped a step's measured window.

The benchmark's PostgreSQL logs every autovacuum and autoanalyze
(`log_autovacuum_min_duration=0`) and every checkpoint (`log_checkpoints=on`); the log
line is written when the work ends, with its elapsed time ("system usage: ... elapsed: 0.60
s", "checkpoint complete: ... total=0.109 s"). Under the rate search's load an autovacuum
pass over the tables a message writes (`conversations`, whose `last_seq` every batch
updates, and `messages`, whose inserts cross the analyze and insert-vacuum thresholds) came
every `autovacuum_naptime` (60 s) and took 0.35-1.06 s (docs/performance.md, round 10,
tail): about one 3 s measured window in 15 overlaps one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# What the benchmark's PostgreSQL is started with (bench/infra.py, `Backends`).
SETTINGS = ["log_autovacuum_min_duration=0", "log_checkpoints=on"]

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[\d+\] LOG:  (.*)$")
_WORK = re.compile(r"^automatic (?:aggressive )?(vacuum|analyze) of table \"([^\"]+)\"")
_ELAPSED = re.compile(r"elapsed: ([0-9.]+) s")
_CHECKPOINT_DONE = re.compile(r"^checkpoint complete:.* total=([0-9.]+) s")


@dataclass(frozen=True, slots=True)
class Maintenance:
    what: str  # "vacuum public.messages", "analyze public.messages", "checkpoint"
    start: float  # unix time
    end: float

    def overlaps(self, start: float, end: float) -> bool:
        return self.start < end and self.end > start


def _unix(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


def read(text: str) -> list[Maintenance]:
    """Every autovacuum, autoanalyze and checkpoint the log tells of, with when it ran."""
    found: list[Maintenance] = []
    pending: tuple[str, float] | None = None  # a vacuum/analyze whose elapsed line is next
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            if pending is not None and (e := _ELAPSED.search(line)):
                what, end = pending
                found.append(Maintenance(what, end - float(e.group(1)), end))
                pending = None
            continue
        pending = None
        at, message = _unix(m.group(1)), m.group(2)
        if w := _WORK.match(message):
            table = w.group(2).split(".", 1)[-1]  # without the database
            pending = (f"{w.group(1)} {table}", at)
        elif c := _CHECKPOINT_DONE.match(message):
            found.append(Maintenance("checkpoint", at - float(c.group(1)), at))
    return found


def during(log: Path | None, start: float, end: float) -> list[dict[str, object]]:
    """The maintenance that overlapped [start, end] (unix times), for a step's result."""
    if log is None or not log.exists():
        return []
    return [
        {"what": w.what, "from_s": round(w.start - start, 2), "took_s": round(w.end - w.start, 2)}
        for w in read(log.read_text(errors="replace"))
        if w.overlaps(start, end)
    ]
