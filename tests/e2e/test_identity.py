"""Identity is the pair (role, sub) (PRODUCT.md §4): a member whose token carries a
specialist's `sub` (which every member of that specialist sees in `conversation_started`)
is somebody else, and gets none of the specialist's conversations, history, messages,
offers or power to end; nor does a specialist who carries a member's `sub` get the
member's requests or conversation. Checked on the specialist's own process and on
another one (the bus must not mix them up either)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.client import Client, token
from tests.support.database import fetchval
from tests.support.flows import put_profile, stored_bodies
from tests.support.servers import LiveService

SPEC = "spec-shared-7"
MEMBER = "acct-shared-31"


async def _quiet(client: Client, *kinds: str) -> None:
    """Nothing of `kinds` reached `client`. A round trip on its own socket first: anything
    delivered to it before the reply is already in its inbox."""
    pong = await client.call({"type": "history", "conversation_id": "conv-none"}, "history")
    assert pong["type"] == "error"
    leaked = [frame for frame in client.inbox if frame["type"] in kinds]
    assert not leaked, f"another identity's frames reached this socket: {leaked}"


async def _active(database_url: str, conversation_id: str) -> str:
    state: str = await fetchval(
        database_url, "SELECT state FROM conversations WHERE id = $1", conversation_id
    )
    return state


@pytest.mark.parametrize("same_process", [True, False], ids=["same-process", "other-process"])
async def test_a_member_with_a_specialists_sub_gets_nothing_of_theirs(
    redis_client: object, service_factory: Any, database_url: str, same_process: bool
) -> None:
    home: LiveService = service_factory()
    away: LiveService = home if same_process else service_factory()
    await put_profile(home, SPEC, name="Rosa", tags=["grief"])

    # The impostor is connected first, so every offer and message for the specialist
    # would reach it too if sockets were grouped by `sub` alone.
    impostor, impostor_welcome = await Client.connect(away.ws, token("member", SPEC, "Mallory"))
    assert impostor_welcome["user"] == {"id": SPEC, "role": "member", "name": "Mallory"}
    specialist, _ = await Client.connect(home.ws, token("specialist", SPEC, "Rosa"))
    # A second device of the real specialist on the impostor's process: what it gets,
    # the impostor would have got at the same moment.
    watcher, _ = await Client.connect(away.ws, token("specialist", SPEC, "Rosa"))
    status = await specialist.call({"type": "availability", "status": "available"}, "availability")
    assert status["type"] == "availability"

    member, _ = await Client.connect(home.ws, token("member", MEMBER, "Sam"))
    queued = await member.call({"type": "request", "tags": ["grief"], "note": "hard week"}, "queued")
    assert queued["type"] == "queued", queued
    offer = await specialist.expect("offer")
    await watcher.expect("offer")
    await _quiet(impostor, "offer")
    stolen = await impostor.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert stolen["type"] == "error", stolen

    started = await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["type"] == "conversation_started", started
    conv = started["conversation"]["id"]
    assert (await member.expect("conversation_started"))["conversation"]["specialist"]["id"] == SPEC
    await watcher.expect("conversation_started")

    ack = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "m1", "body": "for Rosa"}, "ack"
    )
    assert ack["type"] == "ack"
    assert (await watcher.expect("message"))["body"] == "for Rosa"
    await _quiet(impostor, "message", "conversation_started", "offer_revoked")

    # A fresh connection of the impostor: no conversation of the specialist's in welcome,
    # and resuming it brings nothing.
    again, welcome = await Client.connect(away.ws, token("member", SPEC, "Mallory"), resume={conv: 0})
    assert welcome["conversations"] == [], welcome
    assert welcome.get("offers", []) == []
    await _quiet(again, "message")
    await again.close()

    for frame in (
        {"type": "history", "conversation_id": conv},
        {"type": "send", "conversation_id": conv, "client_msg_id": "x1", "body": "impostor says"},
        {"type": "typing", "conversation_id": conv},
        {"type": "read", "conversation_id": conv, "seq": 1},
        {"type": "end", "conversation_id": conv},
        {"type": "feedback", "conversation_id": conv, "rating": 1},
    ):
        reply = await impostor.call(frame, "history")
        assert reply["type"] == "error" and reply["code"] in ("forbidden", "not_found"), (frame, reply)
        assert "for Rosa" not in str(reply)

    async with httpx.AsyncClient(base_url=away.http) as http:
        transcript = await http.get(
            f"/api/conversations/{conv}/messages",
            headers={"Authorization": f"Bearer {token('member', SPEC, 'Mallory')}"},
        )
    assert transcript.status_code in (403, 404), transcript.text
    assert "for Rosa" not in transcript.text

    # The conversation is untouched: still active, still carrying messages both ways.
    assert await _active(database_url, conv) == "active"
    reply = await specialist.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s1", "body": "still here"}, "ack"
    )
    assert reply["type"] == "ack", reply
    assert (await member.expect("message", where=lambda m: m["seq"] == 2))["body"] == "still here"
    assert await stored_bodies(database_url, conv) == [(1, "for Rosa"), (2, "still here")]

    # The real specialist's `end` still works, and the impostor hears nothing of it.
    ended = await specialist.call({"type": "end", "conversation_id": conv}, "conversation_ended")
    assert ended["type"] == "conversation_ended"
    await watcher.expect("conversation_ended")
    await _quiet(impostor, "conversation_ended", "message")
    for client in (impostor, specialist, watcher, member):
        await client.close()


async def test_a_specialist_with_a_members_sub_gets_nothing_of_theirs(
    redis_client: object, service_factory: Any, database_url: str
) -> None:
    one: LiveService = service_factory()
    two: LiveService = service_factory()
    await put_profile(one, SPEC, name="Rosa", tags=["grief"])
    member, _ = await Client.connect(one.ws, token("member", MEMBER, "Sam"))
    queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued["type"] == "queued"

    impostor, welcome = await Client.connect(two.ws, token("specialist", MEMBER, "Mallory"))
    assert welcome["user"]["role"] == "specialist"
    assert welcome.get("requests", []) == [], welcome
    assert welcome["conversations"] == []
    cancel = await impostor.call({"type": "cancel", "request_id": queued["request_id"]}, "cancelled")
    assert cancel["type"] == "error", cancel

    specialist, _ = await Client.connect(one.ws, token("specialist", SPEC, "Rosa"))
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    offer = await specialist.expect("offer")
    started = await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    conv = started["conversation"]["id"]
    await member.expect("conversation_started")
    # A second device of the member on the impostor's process.
    laptop, laptop_welcome = await Client.connect(two.ws, token("member", MEMBER, "Sam"))
    assert [c["id"] for c in laptop_welcome["conversations"]] == [conv]

    await specialist.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s1", "body": "hello Sam"}, "ack"
    )
    assert (await laptop.expect("message"))["body"] == "hello Sam"
    await _quiet(impostor, "message", "conversation_started", "queue_update", "cancelled")

    for frame in (
        {"type": "history", "conversation_id": conv},
        {"type": "end", "conversation_id": conv},
        {"type": "send", "conversation_id": conv, "client_msg_id": "x", "body": "impostor"},
    ):
        reply = await impostor.call(frame, "history")
        assert reply["type"] == "error" and reply["code"] in ("forbidden", "not_found"), (frame, reply)
    async with httpx.AsyncClient(base_url=two.http) as http:
        transcript = await http.get(
            f"/api/conversations/{conv}/messages",
            headers={"Authorization": f"Bearer {token('specialist', MEMBER, 'Mallory')}"},
        )
    assert transcript.status_code in (403, 404), transcript.text
    assert await _active(database_url, conv) == "active"
    assert await stored_bodies(database_url, conv) == [(1, "hello Sam")]
    for client in (impostor, specialist, member, laptop):
        await client.close()


async def test_a_member_and_a_specialist_with_one_sub_can_talk_to_each_other(
    live: LiveService, database_url: str
) -> None:
    """Two people: each sees the other as the peer, and the same `client_msg_id` from each
    is two messages, not one message and a "duplicate" that silently drops the second."""
    await put_profile(live, "same-sub", name="Rosa", tags=["grief"])
    specialist, _ = await Client.connect(live.ws, token("specialist", "same-sub", "Rosa"))
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    member, _ = await Client.connect(live.ws, token("member", "same-sub", "Sam"))
    await member.call({"type": "request", "tags": ["grief"]}, "queued")
    offer = await specialist.expect("offer")
    started = await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    conv = started["conversation"]["id"]
    await member.expect("conversation_started")

    from_member = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "c1", "body": "from Sam"}, "ack"
    )
    from_specialist = await specialist.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "c1", "body": "from Rosa"}, "ack"
    )
    assert (from_member["seq"], from_specialist["seq"]) == (1, 2)
    assert await stored_bodies(database_url, conv) == [(1, "from Sam"), (2, "from Rosa")]
    assert [m["body"] for m in (await member.expect("message"), await member.expect("message"))] == [
        "from Sam",
        "from Rosa",
    ]

    for tok, peer_role in (
        (token("member", "same-sub", "Sam"), "specialist"),
        (token("specialist", "same-sub", "Rosa"), "member"),
    ):
        device, welcome = await Client.connect(live.ws, tok)
        assert [(c["id"], c["peer"]["role"]) for c in welcome["conversations"]] == [(conv, peer_role)]
        await device.close()
    for client in (member, specialist):
        await client.close()
