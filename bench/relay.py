"""The baseline: a bare relay on the same `websockets` library, with nothing else.

It speaks just enough of protocol v1 for the load generator to drive it unchanged: the
`hello` token is read as `<conversation id>|<role>` (no JWT, no auth), a `send` gets an
`ack` and a `message` for both sockets of the pair, with a per-conversation seq kept in
memory. No storage, no Redis, no queue, no flood guard: whatever peerchat does beyond
this is what the ratio measures. Both sockets of a pair must reach the same process.

For the burst's baseline it also matches, as simply as it can: `availability` puts a
specialist in a free list (echoed), `request` gets `queued` and an `offer` to the first
free specialist (or waits for one), `accept` gets `conversation_started` to both. Members
and the specialists they may meet must reach the same process.

    python -m bench.relay --port 8124 [--deflate]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import signal
from datetime import UTC, datetime

import msgspec
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from chat.cli import event_loop


class Hello(msgspec.Struct):
    token: str


class Send(msgspec.Struct):
    type: str
    conversation_id: str = ""
    client_msg_id: str = ""
    body: str = ""
    ref: str | None = None
    offer_id: str = ""


class Ack(msgspec.Struct, tag="ack", tag_field="type", omit_defaults=True):
    conversation_id: str
    client_msg_id: str
    seq: int
    ref: str | None = None


class Sender(msgspec.Struct):
    role: str
    name: str


class Message(msgspec.Struct, tag="message", tag_field="type"):
    conversation_id: str
    seq: int
    sender: Sender
    body: str
    client_msg_id: str
    sent_at: str


_hello = msgspec.json.Decoder(Hello)
_send = msgspec.json.Decoder(Send)
_encode = msgspec.json.Encoder().encode


class Relay:
    def __init__(self) -> None:
        self.pairs: dict[str, set[ServerConnection]] = {}
        self.seqs: dict[str, itertools.count[int]] = {}
        self.free: collections.deque[ServerConnection] = collections.deque()
        self.waiting: collections.deque[tuple[ServerConnection, str]] = collections.deque()
        self.offers: dict[str, tuple[ServerConnection, ServerConnection]] = {}
        self.ids = itertools.count(1)

    async def _match(self) -> None:
        while self.free and self.waiting:
            specialist = self.free.popleft()
            member, request_id = self.waiting.popleft()
            offer_id = f"o{next(self.ids)}"
            self.offers[offer_id] = (member, specialist)
            with contextlib.suppress(ConnectionClosed):
                await specialist.send(
                    '{"type":"offer","offer_id":"' + offer_id + '","request_id":"' + request_id + '",'
                    '"tags":[],"language":null,"note":null,"waited_s":0,"expires_in_s":30,"priority":"normal"}'
                )

    async def _matching_frame(self, ws: ServerConnection, frame: Send) -> None:
        if frame.type == "availability":
            await ws.send('{"type":"availability","status":"available"}')
            self.free.append(ws)
        elif frame.type == "request":
            request_id = f"r{next(self.ids)}"
            await ws.send(
                '{"type":"queued","request_id":"' + request_id + '","position":1,"estimated_wait_s":0}'
            )
            self.waiting.append((ws, request_id))
        elif frame.type == "accept" and frame.offer_id in self.offers:
            member, specialist = self.offers.pop(frame.offer_id)
            started = (
                '{"type":"conversation_started","conversation":{"id":"c' + frame.offer_id + '",'
                '"member":{"alias":"Member"},"specialist":{"id":"s","name":"Specialist"},"tags":[]}}'
            )
            for peer in (specialist, member):
                with contextlib.suppress(ConnectionClosed):
                    await peer.send(started)
        await self._match()

    async def handle(self, ws: ServerConnection) -> None:
        try:
            hello = _hello.decode(await ws.recv())
        except (msgspec.DecodeError, ConnectionClosed):
            return
        conversation_id, _, role = hello.token.partition("|")
        peers = self.pairs.setdefault(conversation_id, set())
        seq = self.seqs.setdefault(conversation_id, itertools.count(1))
        peers.add(ws)
        sender = Sender(role=role, name=role)
        try:
            await ws.send('{"type":"welcome","conversations":[]}')
            async for raw in ws:
                frame = _send.decode(raw)
                if frame.type != "send":
                    await self._matching_frame(ws, frame)
                    continue
                n = next(seq)
                await ws.send(_encode(Ack(frame.conversation_id, frame.client_msg_id, n, frame.ref)).decode())
                sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                message = _encode(
                    Message(frame.conversation_id, n, sender, frame.body, frame.client_msg_id, sent_at)
                ).decode()
                for peer in list(peers):
                    with contextlib.suppress(ConnectionClosed):
                        await peer.send(message)
        except (ConnectionClosed, msgspec.DecodeError):
            pass
        finally:
            peers.discard(ws)


async def run(port: int, deflate: bool) -> None:
    relay = Relay()
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(
        relay.handle,
        "127.0.0.1",
        port,
        compression="deflate" if deflate else None,
        max_size=64 * 1024,
        ping_interval=20,
        ping_timeout=20,
        backlog=4096,
    ):
        await stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--deflate", action="store_true")
    args = parser.parse_args(argv)
    # The same event loop as peerchat's servers (chat.cli.event_loop): the relay is the
    # floor of what this stack costs, so a faster loop must lower the floor too, or the
    # ratio would credit our code with the loop's gain.
    if event_loop() == "uvloop":
        import uvloop

        uvloop.run(run(args.port, args.deflate))
    else:
        asyncio.run(run(args.port, args.deflate))


if __name__ == "__main__":
    main()
