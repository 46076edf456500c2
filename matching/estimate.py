"""Honest waits: how long until a request at a given place in line is offered.

Method (docs/matching.md has the reasoning and the measured error): a request at
position ``p`` among the requests competing for the same specialists is served after
about ``p`` more of those specialists' conversations end, so its wait is ``p / mu``,
where ``mu`` is the pool's recent completion rate. ``mu`` is the completions seen in
the last ``window_s`` seconds, smoothed towards a prior of ``slots / default_handle_s``
(every available slot finishes a conversation every ``default_handle_s`` on average)
that counts as ``PRIOR_S`` seconds of observation: a fresh start is sane, and history
takes over within a few minutes.

A pool is a language (specialists who speak it) or :data:`ANY_LANGUAGE` (everyone).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

ANY_LANGUAGE: None = None
PRIOR_S = 120.0
MAX_ESTIMATE_S = 24 * 3600

Pool = str | None


class ServiceRates:
    """Sliding-window completion rates and available slots per language pool.

    Feed it every conversation that ends (:meth:`completed`) and every change to the
    available slots (:meth:`add_slots`); ask :meth:`rate`. Amortised O(1) per call.
    """

    def __init__(self, window_s: float, default_handle_s: float) -> None:
        self._window_s = window_s
        self._default_handle_s = default_handle_s
        # History starts with the first event we see; before that there is only the prior.
        self._started_at: float | None = None
        self._completions: dict[Pool, deque[float]] = {}
        self._slots: dict[Pool, int] = {}

    def add_slots(self, pools: Iterable[Pool], delta: int) -> None:
        for pool in pools:
            self._slots[pool] = self._slots.get(pool, 0) + delta

    def slots(self, pool: Pool) -> int:
        return self._slots.get(pool, 0)

    def completed(self, pools: Iterable[Pool], now: float, count: int = 1) -> None:
        if self._started_at is None:
            self._started_at = now
        for pool in pools:
            q = self._completions.setdefault(pool, deque())
            q.extend([now] * count)

    def rate(self, pool: Pool, now: float) -> float:
        """Completions per second expected from this pool; 0.0 if nobody can serve it."""
        if self._started_at is None:
            self._started_at = now
        q = self._completions.get(pool)
        done = 0
        if q is not None:
            horizon = now - self._window_s
            while q and q[0] < horizon:
                q.popleft()
            done = len(q)
        observed_s = max(0.0, min(self._window_s, now - self._started_at))
        slots = self._slots.get(pool, 0)
        if slots <= 0:
            # Nobody available to serve: history alone says nothing about the future.
            return 0.0
        prior_rate = slots / self._default_handle_s
        return (done + prior_rate * PRIOR_S) / (observed_s + PRIOR_S)


def estimated_wait_s(position: int, rate: float, default_handle_s: float) -> int:
    """Seconds until the ``position``-th next completion, rounded up.

    With nobody able to serve (``rate`` 0) assume one specialist with one slot turns up,
    which is the most a member can honestly be told.
    """
    if position <= 0:
        return 0
    seconds = position / rate if rate > 0 else position * default_handle_s
    return min(MAX_ESTIMATE_S, math.ceil(seconds))


def shown_wait_s(seconds: int) -> int:
    """What a member is told: rounded up to 5 s under a minute, to 30 s under ten minutes,
    and to whole minutes beyond. An estimate is not more precise than that, and a number
    that ticks down every second would send every waiting member an update every second."""
    for below, step in ((60, 5), (600, 30)):
        if seconds < below:
            return -(-seconds // step) * step
    return -(-seconds // 60) * 60
