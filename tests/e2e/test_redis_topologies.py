"""The service on a Sentinel set and on a 3-master Redis Cluster (PRODUCT.md §11): two
`peerchat serve` processes whose REDIS_URL is the Sentinel or Cluster form match a member
with a specialist on the other process (presence), carry a conversation across them (the
bus), hold the socket cap across them, and close a revoked member everywhere."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.client import Client, token
from tests.support.flows import hello, put_profile, until_closed
from tests.support.redis_topology import redis_cluster_set, sentinel_set
from tests.support.servers import LiveService


@pytest.fixture(params=["sentinel", "cluster"])
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sentinel":
        with sentinel_set(tmp_path) as s:
            yield s.url
    else:
        with redis_cluster_set(tmp_path) as c:
            yield c.url


async def test_a_conversation_across_two_processes(service_factory: Any, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "PEERCHAT_MAX_SOCKETS_PER_USER": "2"}
    a: LiveService = service_factory(**env)
    b: LiveService = service_factory(**env)

    # Presence: the specialist is online on b; whichever process leads matching offers to them.
    await put_profile(a, "spec-t", name="Rosa", tags=["grief"])
    specialist, _ = await Client.connect(b.ws, token("specialist", "spec-t", "Rosa"))
    status = await specialist.call({"type": "availability", "status": "available"}, "availability")
    assert status["type"] == "availability", status
    member_token = token("member", "acct-topo", "Sam")
    phone, _ = await Client.connect(a.ws, member_token)
    queued = await phone.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued["type"] == "queued", queued
    offer = await specialist.expect("offer", timeout=20)
    started = await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    conversation = started["conversation"]["id"]
    await phone.expect("conversation_started")  # rung from b to a
    laptop, welcome = await Client.connect(b.ws, member_token)
    assert [c["id"] for c in welcome["conversations"]] == [conversation]

    # The bus: every message reaches every device, on both processes, once and in order.
    for i in range(10):
        ack = await phone.call(
            {"type": "send", "conversation_id": conversation, "client_msg_id": f"m{i}", "body": f"m {i}"},
            "ack",
        )
        assert ack["type"] == "ack", ack
        ack = await specialist.call(
            {"type": "send", "conversation_id": conversation, "client_msg_id": f"s{i}", "body": f"s {i}"},
            "ack",
        )
        assert ack["type"] == "ack", ack
    for device in (phone, laptop, specialist):
        seqs = [(await device.expect("message"))["seq"] for _ in range(20)]
        assert seqs == list(range(1, 21)), seqs
        assert not device.drain("message"), "no duplicates"
    await specialist.send({"type": "typing", "conversation_id": conversation})
    await phone.expect("typing")
    await laptop.expect("typing")

    # The socket cap counts the member's sockets on both processes.
    for live in (a, b):
        refused = await until_closed(live, hello(member_token))
        assert refused.code == 4029 and refused.frames[0]["code"] == "too_many_connections"

    # A revocation rings every process: the member's sockets on a and b close.
    asked = time.monotonic()
    async with httpx.AsyncClient(base_url=b.http) as http:
        r = await http.post(
            "/api/revocations",
            json={"role": "member", "sub": "acct-topo", "reason": "lost device"},
            headers={"Authorization": f"Bearer {token('supervisor', 'sup-topo')}"},
        )
    assert r.status_code == 201, r.text
    codes = await asyncio.gather(phone.closed(timeout=15), laptop.closed(timeout=15))
    assert list(codes) == [4001, 4001]
    assert time.monotonic() - asked < 5
    assert specialist.closed_code is None
    await specialist.close()
    for live in (a, b):
        assert "redis bus lost" not in live.output() and "unreachable" not in live.output()
