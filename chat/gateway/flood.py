"""The per-socket flood guard (PRODUCT.md §5)."""

from __future__ import annotations

from collections import deque


class FloodGuard:
    """Frames per rolling 10 s: over the limit → `rate_limited`; over twice it → close 4029."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Created at the first frame counted: a socket that only said `hello` keeps no
        # deque (about 0.7 KiB each).
        self._times: deque[float] | None = None

    def _recent(self, now: float) -> deque[float]:
        times = self._times
        if times is None:
            times = self._times = deque()
        while times and times[0] <= now - 10:
            times.popleft()
        return times

    def admits(self, now: float) -> bool:
        """Whether `check` would say "ok"; the frame is counted only if so."""
        times = self._recent(now)
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def check(self, now: float) -> str:
        times = self._recent(now)
        times.append(now)
        if len(times) > 2 * self.limit:
            return "close"
        return "limit" if len(times) > self.limit else "ok"
