"""chat/resp.py: the RESP2 encoding and URL reading the bus's bare connections use."""

from __future__ import annotations

import hiredis
import pytest

from chat.resp import Address, command, parse_url


def test_commands_are_resp2_arrays_of_bulk_strings_and_round_trip() -> None:
    wire = command("PUBLISH", "pc:user:ü", b'\x00{"a":1}\r\n')
    assert wire.startswith(b"*3\r\n$7\r\nPUBLISH\r\n$10\r\npc:user:\xc3\xbc\r\n$10\r\n")
    reader = hiredis.Reader()
    reader.feed(wire)  # a command is an array reply in the same grammar
    assert reader.gets() == [b"PUBLISH", "pc:user:ü".encode(), b'\x00{"a":1}\r\n']


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://127.0.0.1:6390/0", Address("127.0.0.1", 6390, None, False, None, None)),
        ("redis://localhost", Address("localhost", 6379, None, False, None, None)),
        ("rediss://:s%40cret@cache.example:6380", Address("cache.example", 6380, None, True, None, "s@cret")),
        ("redis://bus:pw@10.0.0.5:6379/2", Address("10.0.0.5", 6379, None, False, "bus", "pw")),
        ("unix:///run/redis.sock", Address("localhost", 6379, "/run/redis.sock", False, None, None)),
    ],
)
def test_urls(url: str, address: Address) -> None:
    assert parse_url(url) == address


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        parse_url("http://127.0.0.1:6379")
