"""chat/resp.py: the RESP2 encoding and URL reading the bus's bare connections use."""

from __future__ import annotations

import hiredis
import pytest

from chat.cli import uvicorn_options
from chat.resp import Address, Wire, command, parse_url


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


async def test_a_transport_that_is_not_an_asyncio_subclass_is_taken() -> None:
    """uvloop's transports implement asyncio.Transport without subclassing it; the bus's
    connections once asserted the class and failed every connect under uvloop."""

    class DuckTransport:  # what uvloop.loop.TCPTransport looks like from Python
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.written.append(data)

        def is_closing(self) -> bool:
            return False

    replies: list[object] = []
    wire = Wire(replies.append)
    transport = DuckTransport()
    wire.connection_made(transport)  # type: ignore[arg-type]
    assert wire.up
    wire.send(command("PING"))
    wire.data_received(b"+PONG\r\n")
    assert transport.written == [b"*1\r\n$4\r\nPING\r\n"]
    assert replies == [b"PONG"]


def test_the_server_runs_on_the_loop_the_tests_run_on() -> None:
    assert uvicorn_options(8000)["loop"] == "asyncio"
