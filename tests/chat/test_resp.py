"""chat/resp.py: the RESP2 encoding and URL reading the bus's bare connections use."""

from __future__ import annotations

import ssl

import hiredis
import pytest
from redis.asyncio.connection import ConnectionPool

from chat.cli import event_loop, uvicorn_options
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
        ("redis://127.0.0.1:6390/0", Address("127.0.0.1", 6390, None, None, None, None, 0)),
        ("redis://localhost", Address("localhost", 6379, None, None, None, None, 0)),
        ("redis://bus:pw@10.0.0.5:6379/2", Address("10.0.0.5", 6379, None, None, "bus", "pw", 2)),
        ("redis://10.0.0.5?db=3&password=pw", Address("10.0.0.5", 6379, None, None, None, "pw", 3)),
        ("unix:///run/redis.sock?db=1", Address("localhost", 6379, "/run/redis.sock", None, None, None, 1)),
    ],
)
def test_urls(url: str, address: Address) -> None:
    assert parse_url(url) == address


def test_the_bus_reads_a_url_as_redis_py_does() -> None:
    """Presence's client (redis-py) and the bus must agree on what one REDIS_URL means."""
    url = "redis://bus:p%40ss@cache.example:6390/4?password=ignored"
    kwargs = ConnectionPool.from_url(url).connection_kwargs
    address = parse_url(url)
    assert (address.host, address.port, address.username, address.password, address.db) == (
        kwargs["host"],
        kwargs["port"],
        kwargs.get("username"),
        kwargs.get("password"),
        kwargs.get("db", 0),
    )


def test_tls_defaults_verify_the_server_and_its_name() -> None:
    address = parse_url("rediss://:s%40cret@cache.example:6380")
    assert (address.host, address.port, address.password) == ("cache.example", 6380, "s@cret")
    assert address.tls is not None
    assert address.tls.verify_mode is ssl.CERT_REQUIRED and address.tls.check_hostname


def test_tls_options_in_the_url_are_honoured() -> None:
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    address = parse_url(f"rediss://cache.example?ssl_ca_certs={bundle}&ssl_check_hostname=false")
    assert address.tls is not None and not address.tls.check_hostname
    assert address.tls.get_ca_certs()  # the CA file named in the URL was loaded
    relaxed = parse_url("rediss://cache.example?ssl_cert_reqs=none")
    assert relaxed.tls is not None and relaxed.tls.verify_mode is ssl.CERT_NONE
    with pytest.raises(FileNotFoundError):  # a client certificate named is a certificate used
        parse_url(
            "rediss://cache.example?ssl_certfile=/nonexistent/client.pem&ssl_keyfile=/nonexistent/k.pem"
        )


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


def test_the_server_runs_on_uvloop_which_the_bus_takes() -> None:
    """uvloop is a dependency (82c5e6a), so every server this suite starts runs on it and
    the e2e and fault suites drive the bus's bare connections over uvloop's transports."""
    assert event_loop() == "uvloop"
    assert uvicorn_options(8000)["loop"] == "uvloop"
