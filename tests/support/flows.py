"""Multi-step flows end-to-end tests share: getting a member and a specialist into a
conversation, raw handshakes that must end in a close, and proving nothing stored was lost."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import websockets
from websockets.exceptions import ConnectionClosed

from tests.support.client import Client, token
from tests.support.database import fetch
from tests.support.servers import LiveService


@dataclass
class Pair:
    """A member and a specialist in one active conversation."""

    member: Client
    specialist: Client
    conversation_id: str
    member_id: str
    specialist_id: str

    async def close(self) -> None:
        await self.member.close()
        await self.specialist.close()


async def put_profile(
    live: LiveService,
    specialist_id: str,
    *,
    name: str,
    tags: list[str],
    languages: list[str] | None = None,
    max_chats: int = 2,
) -> None:
    async with httpx.AsyncClient(base_url=live.http) as http:
        put = await http.put(
            f"/api/specialists/{specialist_id}",
            json={"name": name, "tags": tags, "languages": languages or ["en"], "max_chats": max_chats},
            headers={"Authorization": f"Bearer {token('supervisor', 'sup-flows')}"},
        )
        assert put.status_code == 200, put.text


async def matched(
    live: LiveService,
    *,
    member_id: str = "acct-4711",
    specialist_id: str = "spec-1",
    tag: str = "grief",
) -> Pair:
    """The `_matched` pattern of tests/e2e/test_conversation.py: a supervisor gives the
    specialist a tag, the specialist goes available, the member asks for that tag, and the
    specialist accepts the offer. Use a different `tag` per pair when making several."""
    await put_profile(live, specialist_id, name="Rosa", tags=[tag])
    specialist, _ = await Client.connect(live.ws, token("specialist", specialist_id, "Rosa"))
    status = await specialist.call({"type": "availability", "status": "available"}, "availability")
    assert status["type"] == "availability", status
    member, _ = await Client.connect(live.ws, token("member", member_id, "Sam"))
    queued = await member.call({"type": "request", "tags": [tag]}, "queued")
    assert queued["type"] == "queued", queued
    offer = await specialist.expect("offer", where=lambda f: f["request_id"] == queued["request_id"])
    started = await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["type"] == "conversation_started", started
    conversation_id: str = started["conversation"]["id"]
    await member.expect("conversation_started")
    return Pair(member, specialist, conversation_id, member_id, specialist_id)


@dataclass
class Refused:
    """What a connection saw before the server closed it."""

    frames: list[dict[str, Any]]
    code: int | None
    reason: str


async def until_closed(
    live: LiveService, *first: str | bytes, timeout: float = 15, **connect: Any
) -> Refused:
    """Open a socket, send `first` frames as they are (str → text, bytes → binary), and
    collect whatever arrives until the server closes it."""
    frames: list[dict[str, Any]] = []
    async with websockets.connect(live.ws, max_size=None, **connect) as ws:
        try:
            for data in first:
                await ws.send(data)
            async with asyncio.timeout(timeout):
                async for raw in ws:
                    frames.append(msgspec.json.decode(raw))
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
    return Refused(frames, rcvd.code if rcvd else None, rcvd.reason if rcvd else "")


def hello(tok: str | None) -> str:
    return msgspec.json.encode({"type": "hello", "token": tok}).decode()


async def stored_bodies(database_url: str, conversation_id: str) -> list[tuple[int, str]]:
    rows = await fetch(
        database_url,
        "SELECT seq, body FROM messages WHERE conversation_id = $1 ORDER BY seq",
        conversation_id,
    )
    return [(r["seq"], r["body"]) for r in rows]


async def assert_still_serving(live: LiveService) -> None:
    """A brand-new client gets its `welcome`: the process survived whatever came before."""
    client, welcome = await Client.connect(live.ws, token("member", "member-after"))
    assert welcome["user"]["id"] == "member-after"
    await client.close()
    async with httpx.AsyncClient(base_url=live.http) as http:
        assert (await http.get("/healthz")).status_code == 200


def assert_clean_log(live: LiveService, *secrets: str) -> None:
    """No traceback, and none of `secrets` (tokens, message bodies) in the server's output."""
    out = live.output()
    assert "Traceback" not in out, out[-3000:]
    for secret in secrets:
        assert secret not in out, f"{secret[:20]}… leaked into the server log"


async def age_conversation(database_url: str, conversation_id: str, interval: str) -> None:
    """Pretend the conversation ended `interval` ago (and started before that)."""
    await fetch(
        database_url,
        """UPDATE conversations SET ended_at = now() - $2::text::interval,
               started_at = now() - $2::text::interval - interval '1 hour' WHERE id = $1""",
        conversation_id,
        interval,
    )


async def exchange(
    pair_member: Client, pair_specialist: Client, conv: str, n: int, tag: str = ""
) -> list[str]:
    """`n` messages in turn, the member first, each acked; their bodies (`tag` prefixes each)."""
    bodies = []
    for i in range(n):
        who, role = (pair_member, "m") if i % 2 == 0 else (pair_specialist, "s")
        body = f"{tag}{role}-body-{i}"
        ack = await who.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"{role}{i}", "body": body}, "ack"
        )
        assert ack["type"] == "ack", ack
        bodies.append(body)
    return bodies
