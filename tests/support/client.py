"""A protocol v1 client on the real `websockets` library, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from chat.config import Settings
from chat.tokens import mint
from tests.support.servers import JWT_SECRET

SETTINGS = Settings(database_url="-", redis_url="-", jwt_secret=JWT_SECRET)
_refs = itertools.count(1)


def token(role: str, sub: str | None = None, name: str | None = None, **kw: Any) -> str:
    return mint(SETTINGS, sub=sub or f"{role}-{uuid.uuid4().hex[:8]}", role=role, name=name, **kw)  # type: ignore[arg-type]


def bearer(tok: str) -> dict[str, str]:
    """HTTP headers that present `tok` (PRODUCT.md §6)."""
    return {"Authorization": f"Bearer {tok}"}


class Client:
    """One device. Frames arrive in `inbox` in order; `expect(type)` pops the next of a type."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: list[dict[str, Any]] = []
        # Every frame in arrival order, never taken out (for tests about order across types).
        self.received: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.closed_code: int | None = None

    @classmethod
    async def connect(
        cls, url: str, tok: str | None = None, *, resume: dict[str, int] | None = None, **kw: Any
    ) -> tuple[Client, dict[str, Any]]:
        ws = await websockets.connect(url, max_size=None, **kw)
        client = cls(ws)
        hello: dict[str, Any] = {"type": "hello", "token": tok}
        if resume is not None:
            hello["resume"] = resume
        await client.send(hello)
        welcome = await client.expect("welcome")
        return client, welcome

    async def settled(self) -> None:
        """Until the server has finished setting this connection up. `welcome` is sent
        before the connection's presence is written (chat/gateway/connection.py), and the
        socket's first frame is read only after it: any reply means this device counts as
        online. Call it before someone else acts on this person being online (a warm
        transfer to a specialist is refused `offline` until then). It asks for a
        conversation nobody has, which changes nothing; the `not_found` is the reply."""
        reply = await self.call({"type": "history", "conversation_id": str(uuid.uuid4())}, "history")
        assert reply["type"] == "error" and reply["code"] in ("not_found", "forbidden"), reply

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = msgspec.json.decode(raw)
                self.inbox.append(frame)
                self.received.append(frame)
                self._arrived.set()
        except ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.closed_code = rcvd.code if rcvd is not None else 1006
            self._arrived.set()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(msgspec.json.encode(frame).decode())

    async def call(self, frame: dict[str, Any], reply: str, timeout: float = 10) -> dict[str, Any]:
        """Send with a fresh `ref` and wait for the reply (or error) carrying it."""
        ref = f"r{next(_refs)}"
        await self.send({**frame, "ref": ref})
        return await self.expect(reply, ref=ref, timeout=timeout, or_error=True)

    async def expect(
        self,
        kind: str,
        *,
        ref: str | None = None,
        timeout: float = 10,
        or_error: bool = False,
        where: Any = None,
    ) -> dict[str, Any]:
        def wanted(frame: dict[str, Any]) -> bool:
            matches_kind = frame["type"] == kind or (or_error and frame["type"] == "error")
            return (
                matches_kind and (ref is None or frame.get("ref") == ref) and (where is None or where(frame))
            )

        return await self._take(wanted, f"{kind} frame", timeout)

    async def expect_any(self, kinds: tuple[str, ...], *, timeout: float = 10) -> dict[str, Any]:
        """The next frame, in arrival order, whose type is one of `kinds`."""
        return await self._take(lambda frame: frame["type"] in kinds, f"frame of a type in {kinds}", timeout)

    async def _take(
        self, wanted: Callable[[dict[str, Any]], bool], what: str, timeout: float
    ) -> dict[str, Any]:
        """Pop the first frame in `inbox` that is `wanted`, waiting for it up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for i, frame in enumerate(self.inbox):
                if wanted(frame):
                    return self.inbox.pop(i)
            if self.closed_code is not None:
                raise AssertionError(f"closed {self.closed_code} while waiting for {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what}; inbox: {[f['type'] for f in self.inbox]}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    def drain(self, kind: str) -> list[dict[str, Any]]:
        taken = [f for f in self.inbox if f["type"] == kind]
        self.inbox = [f for f in self.inbox if f["type"] != kind]
        return taken

    async def closed(self, timeout: float = 15) -> int:
        await asyncio.wait_for(self._reader, timeout)
        assert self.closed_code is not None
        return self.closed_code

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
