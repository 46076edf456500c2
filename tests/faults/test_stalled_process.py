"""A web process that stalls (SIGSTOP: its loop runs nothing, its sockets stay open) for
longer than the presence TTL. Its specialist counts offline on every other process, as if
the process had died (PRODUCT.md §5: with no device connected they count as offline once
the TTL passes), and other processes may drop its sockets from Redis as a dead process's.
Once it runs again, its next beat finds its lease lapsed and writes its sockets back
(chat/process_lease.py): the same socket counts again, with no reconnect.

Meanwhile the other side of a conversation was told `peer_status reconnecting` by a sweep
(chat/upkeep/grace.py, member_grace.py); once the stalled side counts again they are told
`connected`, or their page would say "reconnecting…" while the peer writes to them."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as redis

from chat.process_lease import PROCS
from tests.faults.harness import Cluster
from tests.support.client import Client, token

pytestmark = pytest.mark.slow

TTL_S = 3.0
SIGCONT = signal.SIGCONT
SUP = {"Authorization": f"Bearer {token('supervisor', 'sup-1')}"}
SPEC = token("specialist", "spec-st", "Rosa")


async def _status(http: str, sid: str) -> str:
    async with httpx.AsyncClient(base_url=http, timeout=10) as client:
        got = await client.get("/api/specialists", headers=SUP)
        assert got.status_code == 200, got.text
        return str(next(p["status"] for p in got.json() if p["id"] == sid))


async def _until(http: str, sid: str, want: str, timeout_s: float) -> float:
    start = time.monotonic()
    while await _status(http, sid) != want:
        assert time.monotonic() - start < timeout_s, f"{sid} never {want}"
        await asyncio.sleep(0.2)
    return time.monotonic() - start


async def _presence_members(client: redis.Redis) -> list[bytes]:
    """Every socket member in the people's presence sets (only the specialist's here)."""
    members: list[bytes] = []
    async for key in client.scan_iter(match="pc:presence:user:*"):
        members += cast(list[bytes], await client.zrange(key, 0, -1))
    return members


async def _lapsed(client: redis.Redis) -> list[bytes]:
    """Processes whose lease ran out (chat/process_lease.py)."""
    return cast(list[bytes], await client.zrangebyscore(PROCS, "-inf", time.time()))


async def test_a_stalled_processs_specialist_counts_offline_then_comes_back_whole(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_PRESENCE_TTL_S": str(TTL_S), "PEERCHAT_RECONNECT_GRACE_S": "600"}
    await cluster.start(processes=2)
    a, b = cluster.web[0], cluster.web[1]
    async with httpx.AsyncClient(base_url=b.http) as http:
        put = await http.put(
            "/api/specialists/spec-st",
            json={"name": "Rosa", "tags": [], "languages": ["en"], "max_chats": 2},
            headers=SUP,
        )
        assert put.status_code == 200, put.text
    stays, _ = await Client.connect(a.ws, SPEC, proxy=None)
    await stays.call({"type": "availability", "status": "available"}, "availability")
    other, _ = await Client.connect(b.ws, SPEC, proxy=None)
    await _until(b.http, "spec-st", "available", 10)
    assert cluster.redis is not None
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        assert len(await _presence_members(client)) == 2

        a.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            # a's lease runs out (b's is renewed)...
            while not await _lapsed(client):
                assert time.monotonic() - stopped < TTL_S + 10, "a's lease never ran out"
                await asyncio.sleep(0.2)
            # ... then their socket on b closes: a's is still open, but a is stalled.
            await other.close()
            await _until(b.http, "spec-st", "offline", 10)
            took = time.monotonic() - stopped
            # b's close met a's socket under a lapsed lease and dropped it as a dead one's.
            assert await _presence_members(client) == []
        finally:
            a.signal(signal.SIGCONT)

        back = await _until(b.http, "spec-st", "available", TTL_S + 10)
        start = time.monotonic()
        while len(await _presence_members(client)) != 1:
            assert time.monotonic() - start < TTL_S + 10, "the stalled process never wrote its socket back"
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()
    # The socket on a works as before.
    await stays.call({"type": "availability", "status": "available"}, "availability")
    await stays.close()
    print(f"\nstalled: offline elsewhere {took:.1f} s after the stop; back {back:.1f} s after it ran")


async def _matched(cluster: Cluster, specialist_on: int, member_on: int) -> tuple[Client, Client, str]:
    async with httpx.AsyncClient(base_url=cluster.web[0].http) as http:
        put = await http.put(
            "/api/specialists/spec-st",
            json={"name": "Rosa", "tags": ["grief"], "languages": ["en"], "max_chats": 2},
            headers=SUP,
        )
        assert put.status_code == 200, put.text
    specialist, _ = await Client.connect(cluster.web[specialist_on].ws, SPEC, proxy=None)
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    member, _ = await Client.connect(cluster.web[member_on].ws, token("member", "acct-st", "Sam"), proxy=None)
    await member.call({"type": "request", "tags": ["grief"], "language": "en"}, "queued")
    offer = await specialist.expect("offer", timeout=20)
    await specialist.send({"type": "accept", "offer_id": offer["offer_id"]})
    conversation_id = (await member.expect("conversation_started", timeout=20))["conversation"]["id"]
    await specialist.expect("conversation_started", timeout=20)
    return specialist, member, conversation_id


def _peer(conversation_id: str, status: str) -> Any:
    return lambda f: f["conversation_id"] == conversation_id and f["status"] == status


@pytest.mark.parametrize(
    ("stalled", "grace"),
    [
        # The specialist's process stalls: the member is told `reconnecting`, then `connected`.
        ("specialist", {"PEERCHAT_RECONNECT_GRACE_S": "600"}),
        # The member's process stalls: the specialist is told the same.
        ("member", {"PEERCHAT_MEMBER_GRACE_S": "60"}),
    ],
)
async def test_the_peer_is_told_connected_once_the_stalled_process_runs_again(
    cluster: Cluster, stalled: str, grace: dict[str, str]
) -> None:
    cluster.env = {"PEERCHAT_PRESENCE_TTL_S": str(TTL_S), **grace}
    await cluster.start(processes=2)
    specialist, member, conv = await _matched(cluster, specialist_on=0, member_on=1)
    process, writer, peer = (0, specialist, member) if stalled == "specialist" else (1, member, specialist)
    cluster.web[process].signal(signal.SIGSTOP)
    try:
        await peer.expect("peer_status", where=_peer(conv, "reconnecting"), timeout=TTL_S + 20)
    finally:
        cluster.web[process].signal(SIGCONT)
    await peer.expect("peer_status", where=_peer(conv, "connected"), timeout=TTL_S + 20)
    # The same socket, never closed, writes on.
    await writer.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "back", "body": "still here"}, "ack"
    )
    assert (await peer.expect("message", timeout=15))["body"] == "still here"
    await specialist.close()
    await member.close()
