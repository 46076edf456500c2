"""chat/privacy/access.py: the one rule every history read path asks (PRODUCT.md §10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chat.privacy.access import Windows, may_read

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
W = Windows(retention_days=90, specialist_access_h=24)


def _ended(ago: timedelta) -> datetime:
    return NOW - ago


@pytest.mark.parametrize("role", ["member", "specialist", "supervisor"])
def test_everyone_in_it_reads_an_active_conversation(role: str) -> None:
    assert may_read(role, "active", None, NOW, W)


def test_a_specialist_reads_until_the_access_window_closes_and_not_after() -> None:
    assert may_read("specialist", "ended", _ended(timedelta(hours=23, minutes=59)), NOW, W)
    assert may_read("specialist", "ended", _ended(timedelta(hours=24)), NOW, W)
    assert not may_read("specialist", "ended", _ended(timedelta(hours=24, seconds=1)), NOW, W)
    assert not may_read("specialist", "ended", _ended(timedelta(days=400)), NOW, W)


def test_the_member_reads_until_retention() -> None:
    assert may_read("member", "ended", _ended(timedelta(days=89)), NOW, W)
    assert not may_read("member", "ended", _ended(timedelta(days=90, seconds=1)), NOW, W)


def test_windows_take_decimals() -> None:
    tiny = Windows(retention_days=0.0001, specialist_access_h=0.001)  # 8.64 s and 3.6 s
    assert may_read("specialist", "ended", _ended(timedelta(seconds=3)), NOW, tiny)
    assert not may_read("specialist", "ended", _ended(timedelta(seconds=4)), NOW, tiny)
    assert may_read("member", "ended", _ended(timedelta(seconds=8)), NOW, tiny)
    assert not may_read("member", "ended", _ended(timedelta(seconds=9)), NOW, tiny)


def test_a_supervisor_is_governed_by_the_audit_not_the_windows() -> None:
    assert may_read("supervisor", "ended", _ended(timedelta(days=400)), NOW, W)


def test_an_unknown_role_reads_nothing_ended() -> None:
    assert not may_read("visitor", "ended", _ended(timedelta(seconds=1)), NOW, W)
