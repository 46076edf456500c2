"""chat/gateway/flood.py: frames per rolling 10 s; over the limit `rate_limited`, over
twice it a close (PRODUCT.md §5)."""

from __future__ import annotations

from chat.gateway.flood import FloodGuard


def test_over_the_limit_is_limited_and_over_twice_it_closes() -> None:
    guard = FloodGuard(limit=3)
    verdicts = [guard.check(100.0 + i * 0.01) for i in range(7)]
    assert verdicts == ["ok", "ok", "ok", "limit", "limit", "limit", "close"]


def test_the_window_rolls_after_ten_seconds() -> None:
    guard = FloodGuard(limit=2)
    assert [guard.check(t) for t in (0.0, 1.0, 2.0)] == ["ok", "ok", "limit"]
    assert guard.check(11.5) == "ok"  # 0.0 and 1.0 have left the window


def test_admits_counts_only_what_it_lets_through() -> None:
    guard = FloodGuard(limit=2)
    assert [guard.admits(0.0), guard.admits(0.1), guard.admits(0.2)] == [True, True, False]
    assert guard.check(0.3) == "limit"  # the refused one was not counted: 3 frames, not 4
