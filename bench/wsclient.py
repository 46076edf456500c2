"""The load generator's client socket: one WebSocket as the generator holds it.

`websockets`' sans-I/O client protocol does the opening handshake on a plain asyncio
(uvloop) transport; after it, unless per-message deflate is on, the few lines a client
needs read and write the frames here (RFC 6455: unmasked server frames, fragments joined,
pings answered, close echoed; every client frame masked with a fresh key). The worker
(bench/loadgen.py) schedules the sends and reads what arrives through `on_text`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, cast

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask  # the library's own C masking
except ImportError:  # a build without it
    from websockets.utils import apply_mask


@dataclass(frozen=True, slots=True)
class Side:
    """One socket to open: where, with which `hello`, in which conversation, as whom."""

    url: str
    hello: str
    conversation_id: str
    role: str


class _Masks:
    """Client frame masking keys (RFC 6455 §5.3: fresh and unpredictable for every frame)
    from the operating system's CSPRNG, as `websockets` takes them (`secrets.token_bytes`),
    but 4 KiB at a time: one `getrandom` call per 1,024 frames, not one per frame."""

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0

    def key(self) -> bytes:
        if self.at >= len(self.pool):
            self.pool = os.urandom(4096)
            self.at = 0
        key = self.pool[self.at : self.at + 4]
        self.at += 4
        return key


_masks = _Masks()
MAX_FRAME = 2**20

# Opcodes (RFC 6455 §5.2).
_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame: masked with a fresh key (RFC 6455 §5.3)."""
    key = _masks.key()
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    return head + key + apply_mask(payload, key)


class Client(asyncio.Protocol):
    """One socket. `websockets`' client protocol does the opening handshake (request,
    response, its checks). Then, unless per-message deflate is on, the frames are read and
    written here, in the few lines a client needs: unmasked server frames parsed straight
    from the transport's bytes (text to `on_text`, fragments joined, pings answered with a
    pong, a close frame echoed), and every client frame masked with a fresh key. The
    library's general parser (a generator per socket, a Frame object and an event list per
    frame) and its sender (a key from `secrets` per frame) had been a fifth of a worker's
    CPU. With deflate on, the library does everything, as before."""

    def __init__(self, side: Side, compression: bool, on_text: Any, on_lost: Any) -> None:
        self.side = side
        self.conn = ClientProtocol(
            parse_uri(side.url),
            extensions=[ClientPerMessageDeflateFactory()] if compression else None,
            max_size=MAX_FRAME,
        )
        self.compression = compression
        self.on_text = on_text
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.first_text: asyncio.Future[bytes] | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.prefix = b""  # the `send` frame up to the client_msg_id
        self.last_seq = 0
        self.lost = False
        self.requested_at = 0  # ns: when this member's `request` was due (the burst)
        self.accepted_at = 0  # ns: when this specialist sent `accept` (the burst)
        # Frames handled here (after the handshake, deflate off):
        self.direct = False
        self.buffer = b""  # bytes of a frame not complete yet
        self.fragments: list[bytes] = []
        self.fragmented: int | None = None  # the opcode of a fragmented message in progress
        self.close_sent = False
        self.close_rcvd: int | None = None  # the server's close code

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports implement asyncio.Transport without
        # subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.conn.send_request(self.conn.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.direct:
            self._frames(data)
            return
        if self.compression or self.conn.state is not State.CONNECTING:
            self._library(data)
            return
        # The handshake: the library gets the response head; what follows it is frames.
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = self.buffer[: end + 4], self.buffer[end + 4 :]
        self.buffer = b""
        self._library(head)
        if self._open():
            self.direct = True
            if rest:
                self._frames(rest)
        elif rest:
            self._library(rest)  # refused: the library reads the body and fails it

    def _open(self) -> bool:
        return self.conn.state is State.OPEN

    def _library(self, data: bytes) -> None:
        self.conn.receive_data(data)
        for event in self.conn.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self._text(event.data)
            elif isinstance(event, Response) and not self.opened.done():
                if self.conn.state is State.OPEN:
                    self.opened.set_result(event)
                else:
                    self.opened.set_exception(ConnectionError(f"handshake refused: {event.status_code}"))
        self._flush()
        if self.conn.close_expected() and self.transport is not None:
            self.transport.close()

    def _text(self, data: bytes | bytearray | memoryview) -> None:
        if self.first_text is not None and not self.first_text.done():
            self.first_text.set_result(bytes(data))
        else:
            self.on_text(self, data)

    def _frames(self, data: bytes) -> None:
        """Every complete frame in the bytes so far; the rest waits for more."""
        if self.buffer:
            data = self.buffer + data
        pos, size = 0, len(data)
        while size - pos >= 2:
            first, second = data[pos], data[pos + 1]
            length, at = second & 0x7F, pos + 2
            if length == 126:
                if size - at < 2:
                    break
                length, at = int.from_bytes(data[at : at + 2], "big"), at + 2
            elif length == 127:
                if size - at < 8:
                    break
                length, at = int.from_bytes(data[at : at + 8], "big"), at + 8
            if second & 0x80 or first & 0x70 or length > MAX_FRAME:
                # A masked server frame, reserved bits with no extension, or too big.
                self._fail(1009 if length > MAX_FRAME else 1002)
                return
            if size - at < length:
                break
            pos = at + length
            self._frame(first, data[at:pos])
            if self.close_rcvd is not None or self.transport is None or self.transport.is_closing():
                return
        self.buffer = data[pos:]

    def _frame(self, first: int, payload: bytes) -> None:
        opcode, fin = first & 0x0F, first & 0x80
        if opcode in (_TEXT, _BINARY):
            if self.fragmented is not None:
                self._fail(1002)
            elif fin:
                if opcode == _TEXT:
                    self._text(payload)
            else:
                self.fragmented, self.fragments = opcode, [payload]
        elif opcode == _CONT:
            if self.fragmented is None:
                self._fail(1002)
                return
            self.fragments.append(payload)
            if fin:
                message, kind = b"".join(self.fragments), self.fragmented
                self.fragmented, self.fragments = None, []
                if kind == _TEXT:
                    self._text(message)
        elif opcode == _PING:
            self._write(_PONG, payload)
        elif opcode == _CLOSE:
            self.close_rcvd = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.close_sent:
                self._write(_CLOSE, payload[:2])  # echo the code (RFC 6455 §5.5.1)
                self.close_sent = True
            if self.transport is not None:
                self.transport.close()
        elif opcode != _PONG:
            self._fail(1002)

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def _fail(self, code: int) -> None:
        if not self.close_sent:
            self._write(_CLOSE, code.to_bytes(2, "big"))
            self.close_sent = True
        if self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        if self.transport is None:
            return
        for chunk in self.conn.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def send(self, payload: bytes) -> bool:
        """A text frame of UTF-8 `payload`; False if the socket is not open any more."""
        if self.direct:
            if self.close_sent or self.lost:
                return False
            self._write(_TEXT, payload)
            return True
        if self.conn.state is not State.OPEN:
            return False
        self.conn.send_text(payload)
        self._flush()
        return True

    def send_text(self, text: str) -> bool:
        return self.send(text.encode())

    def close(self) -> None:
        if self.direct:
            if not self.close_sent and not self.lost:
                self._write(_CLOSE, (1000).to_bytes(2, "big"))
                self.close_sent = True
        elif self.conn.state is State.OPEN:
            self.conn.send_close(1000)
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.direct:
            self.conn.receive_eof()
        for waiter in (self.opened, self.first_text):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)
            if self.opened.done() and self.first_text is None:
                self.on_lost(self)  # a socket that was serving, not one failing to connect

    def close_code(self) -> str:
        if self.direct:
            return str(self.close_rcvd) if self.close_rcvd is not None else "1006"
        rcvd = self.conn.close_rcvd
        return str(rcvd.code) if rcvd is not None else "1006"
