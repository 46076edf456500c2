"""The server's WebSocket keepalive (chat/gateway/keepalive.py, wsproto.py) in a real uvicorn
server with a 1 s ping interval, against a client whose every byte the test controls
(websockets' sans-I/O client over a plain socket): pinged every interval and kept while
it answers, however its pongs arrive; dropped with 1011 one interval after a ping it left
unanswered."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from chat.gateway import keepalive
from tests.support.inprocess import serving

INTERVAL_S = 1.0


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        if event.get("text") is not None:  # echoed, so the test sees it arrived whole
            await send({"type": "websocket.send", "text": "echo:" + event["text"]})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with serving(_app, ws_ping_interval=INTERVAL_S, ws_ping_timeout=INTERVAL_S) as port:
        yield port


class RawClient:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proto: ClientProtocol
    ) -> None:
        self.reader, self.writer, self.proto = reader, writer, proto

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws"))
        proto.send_request(proto.connect())
        client = cls(reader, writer, proto)
        client.flush()
        await client.next_event(timeout=10)  # the handshake's response
        return client

    def flush(self) -> None:
        """Send what the protocol queued (pongs it made for the server's pings, among them)."""
        for data in self.proto.data_to_send():
            if data:
                self.writer.write(data)

    def drop_queued(self) -> None:
        self.proto.data_to_send()

    async def next_event(self, timeout: float) -> Any:
        """The next event: a frame, or None once the server closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.proto.events_received()
            if events:
                return events[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no event from the server")
            data = await asyncio.wait_for(self.reader.read(65536), remaining)
            if not data:
                self.proto.receive_eof()
                return None
            self.proto.receive_data(data)

    async def next_ping(self, timeout: float) -> bytes:
        event = await self.next_event(timeout)
        assert isinstance(event, Frame) and event.opcode is Opcode.PING, event
        return bytes(event.data)

    def close(self) -> None:
        self.writer.close()


async def test_a_client_that_answers_is_pinged_every_interval_and_kept(port: int) -> None:
    client = await RawClient.open(port)
    # Kept alive by the process's ring (the server runs in this test's loop), not by
    # uvicorn's own timers, which would ping and drop the same way.
    assert len(keepalive.ring(asyncio.get_running_loop(), INTERVAL_S)) == 1
    opened = time.monotonic()
    payloads, at = [], []
    for _ in range(4):
        payloads.append(await client.next_ping(timeout=10))
        at.append(time.monotonic())
        client.flush()  # the pong
    # About one interval apart (one tick of the ring at most less; a loaded box may be late).
    assert at[0] - opened >= INTERVAL_S - 1.0
    gaps = [b - a for a, b in itertools.pairwise(at)]
    assert all(0.5 * INTERVAL_S <= gap <= 4 * INTERVAL_S for gap in gaps), gaps
    assert len(set(payloads)) == 4 and all(len(p) == 4 for p in payloads)
    # Still open and served: a text frame comes back.
    client.proto.send_text(b"still here")
    client.flush()
    echo = await client.next_event(timeout=10)
    assert isinstance(echo, Frame) and echo.opcode is Opcode.TEXT and echo.data == b"echo:still here"
    client.close()


async def test_a_pong_sharing_a_read_with_a_text_frame_counts(port: int) -> None:
    """Not the pong read on its own (wsproto's short path): websockets' parser takes it."""
    client = await RawClient.open(port)
    for i in range(3):
        await client.next_ping(timeout=10)
        client.proto.send_text(f"m{i}".encode())
        client.flush()  # pong and text frame in one write
        echo = await client.next_event(timeout=10)
        assert isinstance(echo, Frame) and echo.data == f"echo:m{i}".encode()
    client.close()


async def test_a_client_that_stops_answering_is_dropped_with_1011(port: int) -> None:
    client = await RawClient.open(port)
    await client.next_ping(timeout=10)
    client.flush()
    await client.next_ping(timeout=10)
    unanswered = time.monotonic()
    client.drop_queued()  # this pong is never sent
    event = await client.next_event(timeout=10)
    assert isinstance(event, Frame) and event.opcode is Opcode.CLOSE, event
    assert event.data[:2] == (1011).to_bytes(2, "big")
    # Dropped when its next ping was due, not before.
    assert time.monotonic() - unanswered >= 0.5 * INTERVAL_S
    client.drop_queued()
    assert await client.next_event(timeout=10) is None  # and the connection closed
    client.close()
    assert len(keepalive.ring(asyncio.get_running_loop(), INTERVAL_S)) == 0  # and forgotten
