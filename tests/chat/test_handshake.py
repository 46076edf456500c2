"""chat/gateway/endpoint.py's handshake at the ASGI level: every way a socket can fail to
become a session, and the close code each one gets (PRODUCT.md §5). The endpoint is driven
through its ASGI receive/send, so no server, no sockets and no timing beyond `hello`'s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from starlette.websockets import WebSocket

from chat.config import Settings
from chat.gateway.endpoint import websocket_endpoint
from chat.tokens import Identity
from protocol.codes import CloseCode
from tests.support.client import token
from tests.support.servers import JWT_SECRET


@dataclass
class Admission:
    revoked: set[str] = field(default_factory=set)

    def refuses(self, identity: Identity) -> bool:
        return identity.user_id in self.revoked


@dataclass
class Handshake:
    """One socket's ASGI conversation with the endpoint: what the client sends, what comes back."""

    incoming: list[dict[str, Any]]
    settings: Settings = field(
        default_factory=lambda: Settings(
            database_url="-", redis_url="-", jwt_secret=JWT_SECRET, hello_timeout_s=10.0
        )
    )
    origin: str | None = None
    draining: bool = False
    admission: Admission = field(default_factory=Admission)
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def run(self) -> list[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in [{"type": "websocket.connect"}, *self.incoming]:
            queue.put_nowait(message)

        async def receive() -> dict[str, Any]:
            return await queue.get()  # blocks forever once the client has said everything

        async def send(message: MutableMapping[str, Any]) -> None:
            self.sent.append(dict(message))

        services = SimpleNamespace(settings=self.settings, draining=self.draining, admission=self.admission)
        headers = [(b"host", b"chat.example")]
        if self.origin is not None:
            headers.append((b"origin", self.origin.encode()))
        scope = {
            "type": "websocket",
            "path": "/ws",
            "headers": headers,
            "app": SimpleNamespace(state=SimpleNamespace(services=services)),
            "query_string": b"",
            "subprotocols": [],
        }
        await asyncio.wait_for(websocket_endpoint(WebSocket(scope, receive, send)), 30)
        return self.sent

    def closed_with(self) -> int | None:
        closes = [m for m in self.sent if m["type"] == "websocket.close"]
        assert len(closes) <= 1
        return int(closes[0]["code"]) if closes else None

    def frames(self) -> list[dict[str, Any]]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]


def text(frame: dict[str, Any]) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": json.dumps(frame)}


async def test_a_foreign_origin_is_closed_4003_before_accept() -> None:
    h = Handshake([], origin="https://evil.example")
    await h.run()
    assert [m["type"] for m in h.sent] == ["websocket.close"]
    assert h.closed_with() == CloseCode.FORBIDDEN


async def test_the_same_origin_and_no_origin_are_let_in() -> None:
    for origin in ("https://chat.example", "https://chat.example/", None):
        h = Handshake([text({"type": "ping"})], origin=origin)
        await h.run()
        assert h.sent[0]["type"] == "websocket.accept", origin


async def test_a_listed_origin_is_let_in_and_others_refused() -> None:
    listed = Settings(
        database_url="-",
        redis_url="-",
        jwt_secret=JWT_SECRET,
        allowed_origins=frozenset({"https://app.example"}),
    )
    ok = Handshake([text({"type": "ping"})], settings=listed, origin="https://app.example")
    await ok.run()
    assert ok.sent[0]["type"] == "websocket.accept"
    same_host = Handshake([], settings=listed, origin="https://chat.example")
    await same_host.run()
    assert same_host.closed_with() == CloseCode.FORBIDDEN, "with a list, only the list"


async def test_a_draining_process_turns_sockets_away_with_1012() -> None:
    h = Handshake([], draining=True)
    await h.run()
    assert [m["type"] for m in h.sent] == ["websocket.close"]
    assert h.closed_with() == CloseCode.SERVER_RESTARTING
    assert CloseCode.SERVER_RESTARTING.reconnect


async def test_no_hello_in_time_is_4002() -> None:
    fast = Settings(database_url="-", redis_url="-", jwt_secret=JWT_SECRET, hello_timeout_s=0.2)
    h = Handshake([], settings=fast)
    await h.run()
    assert h.closed_with() == CloseCode.NO_HELLO
    assert h.frames() == []


async def test_a_first_frame_that_is_not_hello_is_4002() -> None:
    for first in (
        text({"type": "ping"}),
        {"type": "websocket.receive", "text": "not json"},
        {"type": "websocket.receive", "bytes": b'{"type": "hello"}'},
    ):
        h = Handshake([first])
        await h.run()
        assert h.closed_with() == CloseCode.NO_HELLO, first
        assert h.frames() == [], "no frame before the close"


async def test_an_oversized_hello_is_1009() -> None:
    small = Settings(database_url="-", redis_url="-", jwt_secret=JWT_SECRET, max_frame_bytes=1024)
    h = Handshake([text({"type": "hello", "token": "x" * 2000})], settings=small)
    await h.run()
    assert h.closed_with() == CloseCode.FRAME_TOO_BIG


async def test_a_hello_without_a_usable_token_is_4001_with_no_frame_before_it() -> None:
    for hello in (
        {"type": "hello"},
        {"type": "hello", "token": 7},
        {"type": "hello", "token": "not-a-jwt"},
        {"type": "hello", "token": token("member", "m1") + "x"},
    ):
        h = Handshake([text(hello)])
        await h.run()
        assert h.closed_with() == CloseCode.BAD_TOKEN, hello
        assert h.frames() == []
        assert not CloseCode.BAD_TOKEN.reconnect


async def test_an_expired_token_is_4001() -> None:
    h = Handshake([text({"type": "hello", "token": token("member", "m1", ttl_s=-60)})])
    await h.run()
    assert h.closed_with() == CloseCode.BAD_TOKEN


async def test_a_revoked_but_valid_token_is_4001() -> None:
    h = Handshake([text({"type": "hello", "token": token("member", "m1")})], admission=Admission({"m1"}))
    await h.run()
    assert h.closed_with() == CloseCode.BAD_TOKEN


async def test_a_client_that_leaves_before_hello_gets_no_close() -> None:
    h = Handshake([{"type": "websocket.disconnect", "code": 1001}])
    await h.run()
    assert [m["type"] for m in h.sent] == ["websocket.accept"]
