"""While Redis is down, the doorbells that say a conversation started or ended are lost
between processes. The periodic repair (every TTL/3) reads PostgreSQL and tells the
sockets that missed them, so no member waits on a match they were never told about, or
types into a conversation that has ended."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import Cluster, seed_conversations
from tests.support.client import Client, token

pytestmark = pytest.mark.slow


async def test_start_and_end_reach_the_other_process_while_redis_is_down(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_PRESENCE_TTL_S": "3"}
    await cluster.start(processes=2)
    assert cluster.redis is not None
    (seeded,) = await seed_conversations(cluster.database_url, 1, prefix="old")
    specialist_web, member_web = cluster.web

    # A conversation that will be ended, with its two sides on different processes.
    old_member, _ = await Client.connect(member_web.ws, token("member", seeded.member_id, "Sam"))
    old_spec, _ = await Client.connect(specialist_web.ws, token("specialist", seeded.specialist_id, "Ro"))
    # A member who will be claimed by hand, and the specialist who will claim them.
    waiting, _ = await Client.connect(member_web.ws, token("member", "m-new", "Kim"))
    queued = await waiting.call({"type": "request"}, "queued")
    picker, _ = await Client.connect(specialist_web.ws, token("specialist", "s-picker", "Pat"))

    cluster.redis.kill()
    await asyncio.sleep(0.5)

    ended = await old_spec.call(
        {"type": "end", "conversation_id": seeded.conversation_id}, "conversation_ended"
    )
    assert ended["type"] == "conversation_ended"  # the local side hears it at once
    told = await old_member.expect("conversation_ended", timeout=8)
    assert told == {
        "type": "conversation_ended",
        "conversation_id": seeded.conversation_id,
        "by": "specialist",
        "reason": "ended",
    }

    started = await picker.call({"type": "claim", "request_id": queued["request_id"]}, "conversation_started")
    assert started["type"] == "conversation_started"
    news = await waiting.expect("conversation_started", timeout=12)
    assert news["conversation"]["id"] == started["conversation"]["id"]
    reply = await waiting.call(
        {"type": "send", "conversation_id": news["conversation"]["id"], "client_msg_id": "m1", "body": "hi"},
        "ack",
    )
    assert reply["type"] == "ack" and reply["seq"] == 1

    await asyncio.sleep(2.5)  # two more repair rounds: nothing is told twice
    assert not old_member.drain("conversation_ended")
    assert not waiting.drain("conversation_started")
    for client in (old_member, old_spec, waiting, picker):
        await client.close()
