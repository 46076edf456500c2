"""A Redis connection at the wire: RESP2 commands out, replies in, parsed by hiredis.

The bus's two connections (one subscribed, one publishing) live on this instead of
redis-py. redis-py wraps every reply read in a timeout and every pipeline in a task hop
and retry logic; for the bus that was about 14 % of a web process's CPU at the goal load
(docs/performance.md). Here a reply costs one `Reader.gets()` in C and one call.
Everything else that talks to Redis (presence, health checks) stays on redis-py.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import hiredis
from redis.asyncio.connection import ConnectionPool, SSLConnection, UnixDomainSocketConnection

Reply = object  # bytes | int | list[Reply] | hiredis.ReplyError | None


def command(*parts: str | bytes) -> bytes:
    """One command in RESP2, as Redis reads it."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclass(frozen=True)
class Address:
    """Where and how to connect, as redis-py reads the same URL."""

    host: str
    port: int
    unix_path: str | None
    tls: ssl.SSLContext | None
    username: str | None
    password: str | None
    # Read for completeness, never sent: pub/sub channels are not per database (a PUBLISH
    # on db 2 reaches a subscriber on db 0), so the bus works whatever db the URL names.
    db: int = 0


def parse_url(url: str) -> Address:
    """redis://, rediss:// (TLS) or unix:// read by redis-py itself
    (`ConnectionPool.from_url`, as `redis.asyncio.Redis.from_url` does for presence), so one
    `REDIS_URL` means the same to the bus and to presence: credentials, db, and TLS with
    the query options redis-py honours (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`,
    `ssl_cert_reqs`, `ssl_check_hostname`, ...), through the very SSL context redis-py
    would build. Nothing connects here."""
    pool = ConnectionPool.from_url(url)
    connection = pool.connection_class(**pool.connection_kwargs)
    tls = connection.ssl_context.get() if isinstance(connection, SSLConnection) else None
    unix_path = connection.path if isinstance(connection, UnixDomainSocketConnection) else None
    return Address(
        host=getattr(connection, "host", "localhost"),
        port=int(getattr(connection, "port", 6379)),
        unix_path=unix_path,
        tls=tls,
        username=connection.username,
        password=connection.password,
        db=int(connection.db or 0),
    )


class Wire(asyncio.Protocol):
    """One connection. `on_reply` gets every reply and push, in arrival order."""

    def __init__(self, on_reply: Callable[[Reply], None]) -> None:
        self._on_reply = on_reply
        self._reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Called once, at once (not a loop turn later), when the connection is gone.
        self.on_lost: Callable[[], None] | None = None
        self.last_heard = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports implement asyncio.Transport without
        # subclassing it, and uvicorn runs on uvloop whenever it is installed.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        reader = self._reader
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                self._on_reply(reply)
        except hiredis.ProtocolError:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def _gone(self) -> None:
        if self.lost.done():
            return
        self.lost.set_result(None)
        if self.on_lost is not None:
            self.on_lost()

    @property
    def up(self) -> bool:
        return self.transport is not None and not self.lost.done() and not self.transport.is_closing()

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._gone()


async def connect(address: Address, on_reply: Callable[[Reply], None], timeout: float) -> Wire:
    """Open a connection and authenticate (the AUTH reply reaches `on_reply` first)."""
    loop = asyncio.get_running_loop()
    wire = Wire(on_reply)
    if address.unix_path is not None:
        opening = loop.create_unix_connection(lambda: wire, address.unix_path)
    else:
        opening = loop.create_connection(lambda: wire, address.host, address.port, ssl=address.tls)
    await asyncio.wait_for(opening, timeout)
    if address.password is not None:
        if address.username is not None:
            wire.send(command("AUTH", address.username, address.password))
        else:
            wire.send(command("AUTH", address.password))
    return wire


async def ask(address: Address, *parts: str | bytes, timeout: float) -> Reply:
    """One command on a connection of its own, closed after its reply (the AUTH's first)."""
    replies: asyncio.Queue[Reply] = asyncio.Queue()
    wire = await connect(address, replies.put_nowait, timeout)
    try:
        wire.send(command(*parts))
        if address.password is not None:
            auth = await asyncio.wait_for(replies.get(), timeout)
            if isinstance(auth, hiredis.ReplyError):
                return auth
        return await asyncio.wait_for(replies.get(), timeout)
    finally:
        wire.abort()
