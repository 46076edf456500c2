"""uvicorn's websockets (sans-I/O) protocol with three changes for the hot path.

1. **Direct sends.** Every outgoing frame through ASGI costs a chain of coroutines
   (Starlette's WebSocket and middleware wrappers, then uvicorn's `send`) and, because
   `send` is awaited, one writer-task wake-up per frame. A chat socket's frames are
   already encoded and need no await unless the socket's buffer is full, so the protocol
   offers, as the ASGI extension `peerchat.direct` in the scope, a synchronous
   `send_now(frames) -> bool`: it writes text frames straight to the transport in one
   write (an `ack` and the sender's own copy of the message go together), or
   returns False (buffer over the high-water mark, closing, closed) and the caller queues
   the frame for the awaited path, which waits for the buffer to drain. Without
   per-message deflate the frame header is written here (two bytes for a chat message)
   rather than by websockets' general serializer. Nothing changes for the client on the
   wire.
2. **Fewer read pauses.** Upstream pauses the transport after every received message and
   resumes it when the application has read it: two `epoll_ctl` calls per chat message.
   Here reading pauses only once `READ_AHEAD` messages wait unread, and an in-time reader
   never pauses at all. What a client can make the process hold is bounded as upstream:
   by what one read of the socket can carry (the frames already in it are queued before
   the pause takes effect, as upstream does), plus READ_AHEAD messages of at most 64 KiB.
3. **Direct reads.** A text frame that finds nothing queued ahead of it is first offered
   to `on_text`, which the application may set (chat/gateway/connection.py does, for a
   `send` while its reader is idle): handled there, it costs no queue and no wake-up of the
   application's task.
4. **Text frames parsed here.** websockets parses every incoming frame through a chain of
   generator-based coroutines (about 14 µs a chat frame on the loaded 2-core box; the rest
   of a `send`'s handling is of the same order). While the connection is open without
   extensions and websockets' parser sits idle between frames with nothing buffered, a
   complete, final, masked text frame of at most 64 KiB (and the configured maximum) is
   unmasked here (websockets' own C `apply_mask`) and handed on as upstream's
   `handle_text` would (about 1 µs). Everything else (control frames, fragments, binary,
   anything malformed or oversized) is fed to websockets as it came, whole frames only, so
   its parser is always between frames when this path looks at it; an incomplete frame is
   held here until the rest arrives. Errors, pings, closes and limits stay websockets'.
5. **Keepalive on one timer.** The server's pings go out from the process's ring
   (chat/gateway/keepalive.py) instead of two timers per ping, written here as the
   six bytes they are; a pong that is a read of its own (ten bytes) is unmasked and
   checked here too. Same interval, same deadline, same close (1011) as upstream.

uvicorn is pinned to an exact version in pyproject.toml; tests/e2e/test_wsproto.py holds
these behaviours against a real server. What this leans on that neither uvicorn nor
websockets documents is listed in chat/gateway/wsproto_surface.py (`UVICORN_*`,
`WEBSOCKETS_*`, `UPSTREAM_SOURCES`), and tests/chat/test_wsproto_surface.py fails on an
upgrade that changes any of it.
Servers without the extension (Starlette's TestClient, another ASGI server) get the plain
ASGI path: the gateway checks for it.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from chat.gateway import keepalive
from chat.gateway.inbox import Flag, Inbox

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask


EXTENSION = "peerchat.direct"
READ_AHEAD = 4
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")
# Text frames up to this size are parsed here (a 16-bit length at most); larger go upstream.
DIRECT_MAX = 65535


def parser_idle(conn: Any) -> bool:
    """websockets' parser is between frames with nothing buffered: suspended in the
    reader's `at_eof` (it waits there before reading each frame's header)."""
    if conn.reader.buffer or conn.current_size is not None:
        return False
    gen = conn.parser
    while (inner := getattr(gen, "gi_yieldfrom", None)) is not None:
        gen = inner
    code = getattr(gen, "gi_code", None)
    return code is not None and code.co_name == "at_eof"


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    # Offered a text frame before it is queued for the application, when nothing is
    # queued ahead of it; True means it was handled and is not queued.
    on_text: Callable[[str], bool] | None = None
    # The start of a frame not yet complete, held here (websockets has seen none of it).
    _held: bytearray | None = None

    # The socket's bucket in the process's keepalive ring, while it is in one.
    _ring_slot: int = -1

    def data_received(self, data: bytes) -> None:
        if (
            len(data) == 10
            and data[0] == 0x8A  # FIN, pong
            and data[1] == 0x84  # masked, 4 bytes: the payload of our pings
            and self.pending_ping_payload is not None
            and self._held is None
            and self.conn.state is State.OPEN
            and parser_idle(self.conn)
            and apply_mask(data[6:], data[2:6]) == self.pending_ping_payload
        ):
            self._ponged()
            return
        buf: bytes | bytearray = data
        held = self._held
        if held is not None:
            # Appended in place: a frame that trickles in a few bytes per read is not
            # copied again with every read.
            held += data
            buf, self._held = held, None
        conn = self.conn
        if (
            not self.handshake_complete
            or self.close_sent
            or conn.state is not State.OPEN
            or conn.extensions
            or not parser_idle(conn)
        ):
            super().data_received(bytes(buf) if held is not None else data)
            return
        limit = min(DIRECT_MAX, conn.max_message_size or DIRECT_MAX)
        pos, end = 0, len(buf)
        while end - pos >= 2:
            # FIN, no RSV bits, opcode 1 (text), masked (RFC 6455 §5.2); anything else,
            # and every frame after it in this read, is websockets' to parse.
            n = buf[pos + 1] ^ 0x80
            if buf[pos] != 0x81 or n > 126:
                break
            head = 6
            if n == 126:
                if end - pos < 4:
                    break  # incomplete: held below
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 8
            if n > limit:
                super().data_received(bytes(buf[pos:]))
                return
            stop = pos + head + n
            if stop > end:
                break  # incomplete: held below
            payload = apply_mask(buf[pos + head : stop], buf[pos + head - 4 : pos + head])
            pos = stop
            # As upstream's handle_text does with a final text frame.
            self.curr_msg_data_type = "text"
            self.frames = [payload]
            self.send_receive_event_to_app()
            if self.close_sent or conn.state is not State.OPEN:
                if pos < end:
                    super().data_received(bytes(buf[pos:]))
                return
        else:
            if pos < end:  # one byte of the next frame's header
                self._hold(buf, pos)
            return
        if end - pos < 2 or (buf[pos] == 0x81 and (buf[pos + 1] ^ 0x80) <= 126):
            self._hold(buf, pos)  # a text frame not complete yet (at most 64 KiB + 8)
        else:
            super().data_received(bytes(buf[pos:]))

    def start_keepalive(self) -> None:
        if self.ping_interval:
            self._ring_slot = keepalive.ring(self.loop, self.ping_interval).add(self)

    def stop_keepalive(self) -> None:
        if self._ring_slot >= 0 and self.ping_interval:
            keepalive.ring(self.loop, self.ping_interval).discard(self, self._ring_slot)
            self._ring_slot = -1
        super().stop_keepalive()

    def keepalive_due(self) -> bool:
        """The ring's turn for this socket: drop it if the last ping got no pong, else ping."""
        if self.close_sent or self.transport.is_closing():
            self._ring_slot = -1
            return False
        if self.pending_ping_payload is not None and self.ping_timeout is not None:
            self._ring_slot = -1
            self.keepalive_timeout()
            return False
        conn = self.conn
        if conn.state is not State.OPEN:
            return True  # closing: its close handshake has a timer of its own
        payload = struct.pack("!I", random.getrandbits(32))
        self.pending_ping_payload = payload
        self.ping_sent_at = self.loop.time()
        # FIN and opcode 9, unmasked, 4 bytes (RFC 6455 §5.5.2), after anything websockets
        # queued itself.
        head = b"".join(conn.data_to_send()) if conn.writes else b""
        self.transport.write(head + b"\x89\x04" + payload)
        return True

    def handle_pong(self, event: Any) -> None:
        # Upstream's check, without its timers: the ring looks at the socket next.
        if self.pending_ping_payload is not None and bytes(event.data) == self.pending_ping_payload:
            self._ponged()

    def _ponged(self) -> None:
        self.last_ping_rtt = self.loop.time() - self.ping_sent_at
        self.pending_ping_payload = None

    def _hold(self, buf: bytes | bytearray, pos: int) -> None:
        if isinstance(buf, bytearray):
            del buf[:pos]  # CPython drops a bytearray's prefix without moving the rest
            self._held = buf
        else:
            self._held = bytearray(buf[pos:])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per-socket memory (issue 20): the received-event queue and the writable flag
        # without asyncio's deques, which a silent socket never needs (chat/gateway/inbox.py).
        self.queue = Inbox()
        self.writable = Flag(True)

    def forget_handshake(self) -> None:
        """Drop the opening handshake's request and response (their headers, ~4 KiB),
        which uvicorn keeps for the socket's life and reads only before the accept. The
        application calls this once the socket is accepted (the scope keeps its headers)."""
        if self.handshake_complete:
            self.request = cast(Any, None)
            self.response = cast(Any, None)

    def send_now(self, frames: list[bytes]) -> bool:
        """Write text frames (UTF-8) now, in one write; False, with nothing written, if
        they must wait or cannot go."""
        if self.close_sent or self.disconnected or not self.handshake_complete or not self.writable.is_set():
            return False
        if self.transport.is_closing():
            return False
        conn = self.conn
        if conn.state is not State.OPEN:
            return False
        if conn.extensions:  # per-message deflate: websockets compresses each frame
            for data in frames:
                conn.send_text(data)
            self.transport.write(b"".join(conn.data_to_send()))
            return True
        # Without extensions a server's text frame is a header and the payload as it is
        # (RFC 6455 §5.2: FIN and opcode 1, no mask, the length in 7, 16 or 64 bits).
        parts = conn.data_to_send() if conn.writes else []  # a pong websockets queued
        for data in frames:
            n = len(data)
            if n < 126:
                parts.append(bytes((0x81, n)))
            elif n < 65536:
                parts.append(_HEAD16.pack(0x81, 126, n))
            else:
                parts.append(_HEAD64.pack(0x81, 127, n))
            parts.append(data)
        self.transport.write(b"".join(parts))
        return True

    async def run_asgi(self) -> None:
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[EXTENSION] = self
        await super().run_asgi()

    def send_receive_event_to_app(self) -> None:
        # Upstream's method, but for when reading pauses (see the module docstring).
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.logger.info("invalid UTF-8 in a text frame; closing with 1007")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
            if self.on_text is not None and self.queue.empty() and self.on_text(text):
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused and self.queue.qsize() >= READ_AHEAD:
            self.read_paused = True
            self.transport.pause_reading()
