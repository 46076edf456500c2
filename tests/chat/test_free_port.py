"""chat/devservers/process.py `free_port`: a port a browser would refuse (ERR_UNSAFE_PORT,
10080 among them) is never handed to a server: a browser test's page on it cannot load."""

from __future__ import annotations

import socket

import pytest

from chat.devservers import process


class _Picks:
    """The port picker's random source, made to offer these ports in turn."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.asked = 0

    def randrange(self, low: int, high: int) -> int:
        self.asked += 1
        return self.ports.pop(0)


def test_a_port_browsers_refuse_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port that is free now, and no browser refuses
        s.bind(("127.0.0.1", 0))
        safe = int(s.getsockname()[1])
    assert safe not in process.BROWSER_REFUSES
    picks = _Picks([10080, 6666, safe])
    monkeypatch.setattr(process, "_pick", picks)
    assert process.free_port() == safe
    assert picks.asked == 3


def test_the_refused_list_holds_the_port_that_failed_in_ci() -> None:
    assert 10080 in process.BROWSER_REFUSES
    assert 8000 not in process.BROWSER_REFUSES
