"""The benchmark's arithmetic, apart from any load so it can be tested on its own: CPU
accounting of a process tree, CPU per delivered message, the settle rule between steps,
the rate search's ladder, and medians over runs."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Times:
    """One process's CPU times in seconds, as psutil's `cpu_times()` gives them:
    `children_*` is what its already-reaped children used over their whole lives."""

    user: float
    system: float
    children_user: float = 0.0
    children_system: float = 0.0


def tree_cpu_seconds(root: Times | None, descendants: Iterable[Times]) -> float:
    """CPU seconds used so far by a process tree: the root, every live descendant, and
    every descendant that has already exited and been reaped (counted in the root's
    `children_*`). The difference of two readings is what the tree used between them,
    even when PostgreSQL backends come and go in between: a backend alive at the first
    reading and reaped before the second moves from the live sum into the root's
    children's time with its whole life, so only its time in the window is left over."""
    if root is None:
        return 0.0
    total = root.user + root.system + root.children_user + root.children_system
    return total + sum(t.user + t.system for t in descendants)


def cpu_per_message_us(cpu_s: float, delivered: int) -> float | None:
    """CPU microseconds per delivered message, or None when nothing was delivered."""
    if delivered <= 0:
        return None
    return round(cpu_s * 1e6 / delivered, 1)


def ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)


# ---------------------------------------------------------------------------- settling


def settled(samples_pct: Sequence[float], quiet_pct: float, consecutive: int) -> bool:
    """Whether the last `consecutive` CPU readings of the servers (percent of one core)
    were each under `quiet_pct`: a backlog from the previous step is gone when the
    servers have stayed quiet for a while, not when one reading happens to be low."""
    if consecutive <= 0:
        return True
    tail = samples_pct[-consecutive:]
    return len(tail) == consecutive and all(s < quiet_pct for s in tail)


# ---------------------------------------------------------------------------- rate search


def round_to(value: float, quantum: int) -> int:
    return round(value / quantum) * quantum


@dataclass
class RateSearch:
    """Which rate to offer next. A coarse climb up `ladder` until a step misses the bound;
    then, from the highest coarse rate that held, a fine climb in steps of a quarter of the
    gap (at least `min_fine`, in multiples of `min_fine`) until a step misses it again.
    Every fine step comes after a step that held (or after a settle following the one coarse
    step that did not), so a rate is measured sustained, not as recovery from an overload.
    If the very first step misses, the search halves down until one holds, then climbs fine.
    Call `next()` for the rate to run (None when done), then `record(rate, passed)`."""

    ladder: Sequence[int]
    min_fine: int = 250
    fine_parts: int = 4
    best: int | None = None
    first_failing: int | None = None
    tried: list[tuple[int, bool]] = field(default_factory=list)
    phase: str = "coarse"  # coarse | down | fine | done (the phase of the rate next() gives)
    _index: int = 0
    _fine_step: int = 0

    def next(self) -> int | None:
        if self.phase == "coarse":
            if self._index >= len(self.ladder):
                self.phase = "done"
                return None
            return int(self.ladder[self._index])
        if self.phase == "down":
            assert self.first_failing is not None
            low = round_to(self.first_failing / 2, self.min_fine)
            if low < self.min_fine or low >= self.first_failing:
                self.phase = "done"
                return None
            return low
        if self.phase == "fine":
            assert self.best is not None and self.first_failing is not None
            rate = self.best + self._fine_step
            if rate >= self.first_failing:
                self.phase = "done"
                return None
            return rate
        return None

    def record(self, rate: int, passed: bool) -> None:
        self.tried.append((rate, passed))
        if self.phase == "coarse":
            self._index += 1
            if passed:
                self.best = rate
                return
            self.first_failing = rate
            if self.best is None:
                self.phase = "down"
            else:
                self._start_fine()
        elif self.phase == "down":
            if passed:
                self.best = rate
                self._start_fine()
            else:
                self.first_failing = rate
        elif self.phase == "fine":
            if passed:
                self.best = rate
            else:
                self.first_failing = rate
                self.phase = "done"

    def _start_fine(self) -> None:
        assert self.best is not None and self.first_failing is not None
        gap = self.first_failing - self.best
        self._fine_step = max(self.min_fine, round_to(gap / self.fine_parts, self.min_fine))
        self.phase = "fine"

    @property
    def limited_by_ladder(self) -> bool:
        """Every rung held: the true limit is above what the ladder offers."""
        return self.first_failing is None and self.best is not None


# ---------------------------------------------------------------------------- runs


def median(values: Sequence[float | None]) -> float | None:
    """Median of the runs that produced a value (None where a run did not)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return float(statistics.median(present))


def over_runs(values: Sequence[float | None]) -> dict[str, Any]:
    """A figure over several runs: its median and every run's value, in run order."""
    m = median(values)
    return {"median": None if m is None else round(m, 2), "runs": list(values)}


def dig(tree: Any, *path: str | int) -> Any:
    """tree[path[0]][path[1]]…, or None where a key is missing."""
    for key in path:
        in_dict = isinstance(tree, dict) and key in tree
        in_list = isinstance(tree, list) and isinstance(key, int) and -len(tree) <= key < len(tree)
        if in_dict or in_list:
            tree = tree[key]
        else:
            return None
    return tree
