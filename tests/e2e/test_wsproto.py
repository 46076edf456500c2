"""chat/gateway/wsproto.py in a real uvicorn server, driven by a real `websockets` client.

A tiny ASGI app stands in for peerchat so each test can reach the protocol object through
the scope extension and look at what the transport does: direct sends, their refusal
when the client stops reading (and the awaited path taking over), and the read pause.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from chat.cli import uvicorn_options
from chat.devservers import free_port
from chat.gateway.wsproto import EXTENSION, READ_AHEAD, DirectWebSocketProtocol
from tests.support.inprocess import serving

Scope = dict[str, Any]
Handler = Callable[[DirectWebSocketProtocol, Callable[[], Awaitable[Any]]], Awaitable[None]]


class Stage:
    """One server whose socket handler the test sets."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.protocol: asyncio.Future[DirectWebSocketProtocol] | None = None

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        direct: DirectWebSocketProtocol = scope["extensions"][EXTENSION]
        assert self.protocol is not None
        self.protocol.set_result(direct)
        assert self.handler is not None
        await self.handler(direct, receive)


@pytest.fixture
async def stage(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Stage, int]]:
    stage = Stage()
    deflate = getattr(request, "param", False)
    async with serving(stage.app, 10, ws_per_message_deflate=deflate, ws_max_size=1 << 20) as port:
        yield stage, port


def test_the_service_is_served_with_the_direct_protocol() -> None:
    config = uvicorn.Config(Stage().app, **uvicorn_options(free_port()))
    config.load()
    assert config.ws_protocol_class is DirectWebSocketProtocol


async def test_direct_sends_reach_the_client_in_order(stage: tuple[Stage, int]) -> None:
    st, port = stage
    st.protocol = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def handler(direct: DirectWebSocketProtocol, receive: Callable[[], Awaitable[Any]]) -> None:
        for i in range(0, 100, 2):
            frames = [f'{{"n":{n},"text":"ünïcode"}}'.encode() for n in (i, i + 1)]
            assert direct.send_now(frames)
        await done.wait()

    st.handler = handler
    async with connect(f"ws://127.0.0.1:{port}/ws") as client:
        got = [await client.recv() for _ in range(100)]
        done.set()
    assert got == [f'{{"n":{i},"text":"ünïcode"}}' for i in range(100)]


@pytest.mark.parametrize(("stage", "deflate"), [(False, False), (True, True)], indirect=["stage"])
async def test_direct_sends_frame_every_length_as_websockets_reads_it(
    stage: tuple[Stage, int], deflate: bool
) -> None:
    """The header carries the length in 7, 16 or 64 bits (written here without deflate,
    by websockets with it); the client's parser is the judge. Pings the client sends
    meanwhile get their pongs."""
    st, port = stage
    st.protocol = asyncio.get_running_loop().create_future()
    lengths = [0, 1, 125, 126, 127, 65_535, 65_536, 300_000]
    may_send = asyncio.Event()
    done = asyncio.Event()

    async def handler(direct: DirectWebSocketProtocol, receive: Callable[[], Awaitable[Any]]) -> None:
        await may_send.wait()
        for n in lengths:  # 16 frames, 0.6 MB: loopback's socket buffer takes them at once
            assert direct.send_now([b"x" * n, b"y"])
        await done.wait()

    st.handler = handler
    async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as client:
        protocol = await st.protocol
        assert bool(protocol.conn.extensions) is deflate
        pong = await client.ping()
        may_send.set()
        got = [await client.recv() for _ in range(2 * len(lengths))]
        await asyncio.wait_for(pong, 5)
        done.set()
    assert [len(m) for m in got[::2]] == lengths
    assert got[::2] == ["x" * n for n in lengths] and set(got[1::2]) == {"y"}


async def test_a_client_that_stops_reading_turns_direct_sends_away(stage: tuple[Stage, int]) -> None:
    st, port = stage
    st.protocol = asyncio.get_running_loop().create_future()
    refused_after: list[int] = []
    finished = asyncio.Event()
    frame = b'"' + b"x" * 16_000 + b'"'

    async def handler(direct: DirectWebSocketProtocol, receive: Callable[[], Awaitable[Any]]) -> None:
        sent = 0
        while direct.send_now([frame]):
            sent += 1
            assert sent < 2_000, "the buffer never filled: send_now ignores flow control"
        refused_after.append(sent)
        # The awaited path waits for room, then sends: nothing is lost or reordered.
        await direct.send({"type": "websocket.send", "text": '"last"'})
        finished.set()
        await receive()

    st.handler = handler
    async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None, max_queue=1) as client:
        # max_queue=1: the client library stops reading the socket almost at once.
        for _ in range(500):
            if refused_after:
                break
            await asyncio.sleep(0.01)
        assert refused_after, "send_now never refused a frame: it ignores flow control"
        assert not finished.is_set(), "the awaited send must wait while the client is not reading"
        count = 0
        while (message := await client.recv()) != '"last"':
            assert message == frame.decode()
            count += 1
        assert count == refused_after[0]
        await asyncio.wait_for(finished.wait(), 5)


async def test_reading_pauses_only_once_frames_wait_unread(stage: tuple[Stage, int]) -> None:
    st, port = stage
    st.protocol = asyncio.get_running_loop().create_future()
    may_read = asyncio.Event()
    read: list[str] = []

    async def handler(direct: DirectWebSocketProtocol, receive: Callable[[], Awaitable[Any]]) -> None:
        await may_read.wait()
        while len(read) < 20:
            message = await receive()
            read.append(message["text"])
        direct.send_now([b'"read all"'])
        await receive()

    st.handler = handler
    async with connect(f"ws://127.0.0.1:{port}/ws") as client:
        protocol = await st.protocol
        await client.send("one")
        await asyncio.sleep(0.1)
        assert protocol.queue.qsize() == 1
        assert not protocol.read_paused, "one unread frame does not pause reading"
        for i in range(19):
            await client.send(str(i))
        await asyncio.sleep(0.1)
        assert protocol.read_paused, f"{READ_AHEAD}+ unread frames pause reading"
        may_read.set()
        assert await asyncio.wait_for(client.recv(), 5) == '"read all"'
        assert read == ["one", *[str(i) for i in range(19)]]
        assert not protocol.read_paused


async def test_on_text_takes_frames_only_when_nothing_is_queued_ahead(stage: tuple[Stage, int]) -> None:
    """A frame `on_text` accepts is not queued; one it declines is, and while anything is
    queued, later frames are not offered (they would overtake it)."""
    st, port = stage
    st.protocol = asyncio.get_running_loop().create_future()
    offered: list[str] = []
    may_read = asyncio.Event()
    read: list[str] = []

    def on_text(text: str) -> bool:
        offered.append(text)
        return text.startswith("take")

    async def handler(direct: DirectWebSocketProtocol, receive: Callable[[], Awaitable[Any]]) -> None:
        direct.on_text = on_text
        direct.send_now([b'"ready"'])
        await may_read.wait()
        while len(read) < 3:
            read.append((await receive())["text"])
        direct.send_now([b'"read"'])
        await receive()

    st.handler = handler
    async with connect(f"ws://127.0.0.1:{port}/ws") as client:
        assert await client.recv() == '"ready"'
        for text in ("take 1", "keep 1", "take 2", "keep 2", "take 3"):
            await client.send(text)
        await asyncio.sleep(0.2)
        may_read.set()
        assert await asyncio.wait_for(client.recv(), 5) == '"read"'
    assert offered == ["take 1", "keep 1"], "nothing is offered while a frame waits unread"
    assert read == ["keep 1", "take 2", "keep 2"]


def _client_frames() -> tuple[bytes, list[tuple[str, str | bytes]]]:
    """Masked client frames as one byte string, and the messages they carry in order:
    text of every header length (the largest beyond what the protocol parses itself),
    a fragmented text message, a binary one, a ping between them."""
    frames: list[Frame] = []
    expected: list[tuple[str, str | bytes]] = []
    for n in (0, 1, 125, 126, 127, 1000, 65_535, 65_536, 200_000):
        text = ("é" + "x" * n)[:n] if n else ""
        frames.append(Frame(Opcode.TEXT, text.encode()))
        expected.append(("text", text))
    frames.append(Frame(Opcode.PING, b"hi"))
    frames += [Frame(Opcode.TEXT, b"frag", fin=False), Frame(Opcode.CONT, "ment ü".encode())]
    expected.append(("text", "fragment ü"))
    frames.append(Frame(Opcode.BINARY, b"\x00\x01"))
    expected.append(("bytes", b"\x00\x01"))
    frames.append(Frame(Opcode.TEXT, b'{"last":true}'))
    expected.append(("text", '{"last":true}'))
    return b"".join(f.serialize(mask=True, extensions=[]) for f in frames), expected


async def test_incoming_frames_split_anywhere_arrive_whole_and_in_order(stage: tuple[Stage, int]) -> None:
    """Text frames are parsed by the protocol itself (module docstring, 4), everything else
    by websockets: whatever the reads' boundaries (one byte at a time, then chunks of
    random sizes), every message arrives once, whole, in order; the ping is answered."""
    st, port = stage
    wire, expected = _client_frames()
    for attempt in range(2):
        st.protocol = asyncio.get_running_loop().create_future()
        got: list[tuple[str, str | bytes]] = []
        finished = asyncio.Event()

        async def handler(
            direct: DirectWebSocketProtocol,
            receive: Callable[[], Awaitable[Any]],
            got: list[tuple[str, str | bytes]] = got,
            finished: asyncio.Event = finished,
        ) -> None:
            direct.send_now([b'"ready"'])
            while len(got) < len(expected):
                message = await receive()
                if message["type"] != "websocket.receive":
                    break
                got.append(
                    ("text", message["text"])
                    if message.get("text") is not None
                    else ("bytes", message["bytes"])
                )
            finished.set()
            await receive()

        st.handler = handler
        async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as client:
            assert await client.recv() == '"ready"'
            transport = client.transport
            rng = random.Random(attempt)
            pos = 0
            while pos < len(wire):
                size = 1 if pos < 300 else rng.randint(1, 9000)
                transport.write(wire[pos : pos + size])
                pos += size
                await asyncio.sleep(0.0005 if size == 1 else 0)
            await asyncio.wait_for(finished.wait(), 10)
            pong = await client.ping()  # answered after the raw ping's pong: the connection is sound
            await asyncio.wait_for(pong, 5)
        assert got == expected


async def test_invalid_utf8_in_a_text_frame_closes_with_1007(stage: tuple[Stage, int]) -> None:
    st, port = stage
    st.protocol = asyncio.get_running_loop().create_future()
    got: list[Any] = []

    async def handler(direct: DirectWebSocketProtocol, receive: Callable[[], Awaitable[Any]]) -> None:
        direct.send_now([b'"ready"'])
        got.append(await receive())

    st.handler = handler
    async with connect(f"ws://127.0.0.1:{port}/ws") as client:
        assert await client.recv() == '"ready"'
        client.transport.write(Frame(Opcode.TEXT, b"ok \xff\xfe").serialize(mask=True, extensions=[]))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(client.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    assert all(m["type"] == "websocket.disconnect" for m in got)
