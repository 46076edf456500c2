"""A client that stops reading is closed with 4008 and costs the server a bounded amount of
memory; a client that sends too fast is told `rate_limited`, then closed with 4029."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import asyncpg
import msgspec
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.faults.harness import Cluster, http_get, rss_mib, seed_conversations
from tests.support.client import Client, token
from tests.support.servers import LiveService

pytestmark = pytest.mark.slow

BODY = "x" * 3900


async def _stalled_reader(url: str, user_id: str) -> websockets.ClientConnection:
    """A real WebSocket client that says hello and then never reads again: a tiny receive
    buffer and a tiny library queue, so the server's writes back up at once."""
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    ws = await websockets.connect(url, sock=sock, max_size=None, max_queue=1, proxy=None, ping_interval=None)
    await ws.send(msgspec.json.encode({"type": "hello", "token": token("specialist", user_id)}).decode())
    assert msgspec.json.decode(await ws.recv())["type"] == "welcome"
    return ws


async def test_a_client_that_stops_reading_is_closed_4008_and_memory_stays_bounded(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_RATE_LIMIT_PER_10S": "1000000"}
    await cluster.start(processes=1)
    svc = cluster.web[0]
    seeded = await seed_conversations(cluster.database_url, 4)
    stalled = [await _stalled_reader(svc.ws, s.specialist_id) for s in seeded]
    senders = []
    for s in seeded:
        sender, _ = await Client.connect(svc.ws, token("member", s.member_id), proxy=None)
        senders.append(sender)
    per_sender = 2500
    baseline = rss_mib(svc)
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib(svc))
            await asyncio.sleep(0.05)

    async def flood(sender: Client, conversation_id: str) -> None:
        for i in range(per_sender):
            await sender.send(
                {"type": "send", "conversation_id": conversation_id, "client_msg_id": f"f{i}", "body": BODY}
            )
            if i % 100 == 99:  # keep the sender itself a well-behaved reader
                await sender.expect("ack", where=lambda f, i=i: f["client_msg_id"] == f"f{i}", timeout=30)
                sender.inbox.clear()

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    await asyncio.gather(
        *(flood(sender, s.conversation_id) for sender, s in zip(senders, seeded, strict=True))
    )
    flooded_s = time.monotonic() - started
    done.set()
    await sampler

    db = await asyncpg.connect(cluster.database_url)
    try:
        stored = await db.fetchval("SELECT count(*) FROM messages")
    finally:
        await db.close()
    assert stored == 4 * per_sender
    payload_mib = 4 * per_sender * len(BODY) / (1024 * 1024)
    growth = peak - baseline
    assert growth < 20, f"RSS grew {growth:.1f} MiB while {payload_mib:.0f} MiB went to stalled readers"

    # The stalled clients read again: what the server had buffered, then the close.
    for ws in stalled:
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(20):
                async for _ in ws:
                    pass
        assert ws.close_code == 4008, ws.close_code
    _, metrics = http_get(svc.http + "/metrics")
    assert "peerchat_slow_consumer_closes_total 4.0" in metrics
    # The senders were never affected.
    assert all(s.closed_code is None for s in senders)
    print(
        f"\n{4 * per_sender} messages ({payload_mib:.0f} MiB) flooded at 4 stalled readers "
        f"in {flooded_s:.1f} s; "
        f"RSS {baseline:.0f} → peak {peak:.0f} MiB; all 4 closed 4008"
    )
    for sender in senders:
        await sender.close()


async def test_flood_guard_rate_limits_then_closes_4029(service_factory: object, database_url: str) -> None:
    live: LiveService = service_factory(PEERCHAT_RATE_LIMIT_PER_10S="20")  # type: ignore[operator]
    (s,) = await seed_conversations(database_url, 1)
    member, _ = await Client.connect(live.ws, token("member", s.member_id), proxy=None)
    for i in range(20):
        ack = await member.call(
            {"type": "send", "conversation_id": s.conversation_id, "client_msg_id": f"m{i}", "body": "hi"},
            "ack",
        )
        assert ack["type"] == "ack"
    over = await member.call(
        {"type": "send", "conversation_id": s.conversation_id, "client_msg_id": "m20", "body": "hi"}, "ack"
    )
    assert over["type"] == "error" and over["code"] == "rate_limited"
    for _ in range(21, 60):
        await member.send({"type": "typing", "conversation_id": s.conversation_id})
    assert await member.closed() == 4029
    db = await asyncpg.connect(database_url)
    try:
        assert await db.fetchval("SELECT count(*) FROM messages") == 20, "nothing over the limit was stored"
    finally:
        await db.close()
