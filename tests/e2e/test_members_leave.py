"""Members who leave (PRODUCT.md §5 v1.1, issue 18), over real sockets and two processes:
the grace counts from the member's last live connection anywhere; past it a waiting request
is cancelled (`abandoned`, told on the next connection) and an active conversation ends
with `peer_gone`, freeing the specialist; meanwhile specialists see `member_online: false`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.support.client import Client, token
from tests.support.database import fetchval, stored_row
from tests.support.flows import put_profile
from tests.support.servers import LiveService, wait_until

GRACE = {"PEERCHAT_MEMBER_GRACE_S": "2"}


async def _request_state(database_url: str, request_id: str) -> tuple[str, str | None]:
    row = await stored_row(
        database_url, "SELECT state, cancel_reason FROM requests WHERE id = $1", request_id
    )
    return row["state"], row["cancel_reason"]


async def _gone_count(processes: list[LiveService], what: str) -> float:
    total = 0.0
    async with httpx.AsyncClient() as http:
        for svc in processes:
            text = (await http.get(f"{svc.http}/metrics")).text
            for line in text.splitlines():
                if line.startswith(f'peerchat_member_gone_total{{what="{what}"}}'):
                    total += float(line.split()[-1])
    return total


async def test_a_waiting_member_keeps_their_place_while_any_device_lives_then_is_let_go(
    service_factory: Any, database_url: str
) -> None:
    a: LiveService = service_factory(**GRACE)
    b: LiveService = service_factory(**GRACE)
    phone, _ = await Client.connect(a.ws, token("member", "acct-leaves", "Sam"))
    queued = await phone.call({"type": "request", "tags": ["grief"]}, "queued")
    request_id = queued["request_id"]
    laptop, welcome = await Client.connect(b.ws, token("member", "acct-leaves", "Sam"))
    assert [r["request_id"] for r in welcome["requests"]] == [request_id]

    # The phone drops; the laptop on the other process still lives: nothing is lost, however long.
    await phone.close()
    started = time.monotonic()
    while time.monotonic() - started < 6:  # three graces
        assert await _request_state(database_url, request_id) == ("waiting", None)
        await asyncio.sleep(0.5)

    # The last device goes: past the grace the request is cancelled as abandoned.
    await laptop.close()

    async def abandoned() -> bool:
        return await _request_state(database_url, request_id) == ("cancelled", "abandoned")

    await wait_until(abandoned, timeout=30)
    # Counted once, by whichever process swept.
    assert await _gone_count([a, b], "request") == 1
    # Never offered afterwards: a specialist with the right tag comes online and gets nothing.
    await put_profile(a, "spec-late", name="Late", tags=["grief"])
    specialist, _ = await Client.connect(a.ws, token("specialist", "spec-late", "Late"))
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    queue = await specialist.call({"type": "queue_watch"}, "queue")
    assert queue["requests"] == []
    assert await fetchval(database_url, "SELECT count(*) FROM offers WHERE request_id = $1", request_id) == 0

    # Told on the next connection, once.
    back, again = await Client.connect(b.ws, token("member", "acct-leaves", "Sam"))
    assert again["requests"] == []
    told = await back.expect("cancelled")
    assert told == {"type": "cancelled", "request_id": request_id, "reason": "abandoned"}
    other, _ = await Client.connect(a.ws, token("member", "acct-leaves", "Sam"))
    await asyncio.sleep(1)
    assert not [f for f in other.inbox if f["type"] == "cancelled"], "told once"
    # And they may ask again at once.
    queued_again = await back.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued_again["type"] == "queued", queued_again


async def test_a_member_who_vanishes_mid_conversation_frees_the_specialist(
    service_factory: Any, database_url: str
) -> None:
    a: LiveService = service_factory(**GRACE)
    b: LiveService = service_factory(**GRACE)
    await put_profile(a, "spec-1", name="Rosa", tags=["grief"], max_chats=1)
    specialist, _ = await Client.connect(a.ws, token("specialist", "spec-1", "Rosa"))
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    member, _ = await Client.connect(b.ws, token("member", "acct-gone", "Sam"))
    queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
    offer = await specialist.expect("offer", where=lambda f: f["request_id"] == queued["request_id"])
    assert offer["member_online"] is True
    started = await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    conv = started["conversation"]["id"]
    await member.expect("conversation_started")

    # A drop of a moment costs nothing.
    await member.close()
    assert (await specialist.expect("peer_status"))["status"] == "reconnecting"
    _, view = await Client.connect(b.ws, token("specialist", "spec-1", "Rosa"))
    assert view["conversations"][0]["member_online"] is False
    member, _ = await Client.connect(a.ws, token("member", "acct-gone", "Sam"))
    assert (await specialist.expect("peer_status"))["status"] == "connected"
    _, view = await Client.connect(b.ws, token("specialist", "spec-1", "Rosa"))
    assert view["conversations"][0]["member_online"] is True
    await asyncio.sleep(5)  # more than twice the grace
    assert await fetchval(database_url, "SELECT state FROM conversations WHERE id = $1", conv) == "active"

    # Gone for good: the conversation ends by system, peer_gone, and the slot is free again.
    await member.close()
    ended = await specialist.expect("conversation_ended", timeout=30)
    assert ended == {
        "type": "conversation_ended",
        "conversation_id": conv,
        "by": "system",
        "reason": "peer_gone",
    }
    assert (await specialist.expect("peer_status", where=lambda f: f["status"] == "gone"))[
        "conversation_id"
    ] == conv
    assert await fetchval(database_url, "SELECT active_chats FROM specialists WHERE id = 'spec-1'") == 0
    assert await _gone_count([a, b], "conversation") == 1
    # The specialist can take the next member at once (capacity 1).
    other, _ = await Client.connect(b.ws, token("member", "acct-next", "Kim"))
    nxt = await other.call({"type": "request", "tags": ["grief"]}, "queued")
    offer = await specialist.expect("offer", where=lambda f: f["request_id"] == nxt["request_id"], timeout=15)
    assert offer["member_online"] is True

    # The member comes back later: the conversation is over, the peer is in past_peers.
    _, welcome = await Client.connect(a.ws, token("member", "acct-gone", "Sam"))
    assert welcome["conversations"] == []
    assert [p["id"] for p in welcome["past_peers"]] == ["spec-1"]


async def test_offers_and_the_queue_say_when_the_member_is_away(service_factory: Any) -> None:
    live: LiveService = service_factory(PEERCHAT_MEMBER_GRACE_S="120")
    member, _ = await Client.connect(live.ws, token("member", "acct-away", "Sam"))
    queued = await member.call({"type": "request", "tags": ["family"]}, "queued")
    await member.close()
    await put_profile(live, "spec-2", name="Ana", tags=["family"])
    specialist, _ = await Client.connect(live.ws, token("specialist", "spec-2", "Ana"))
    queue = await specialist.call({"type": "queue_watch"}, "queue")
    [entry] = queue["requests"]
    assert entry["request_id"] == queued["request_id"] and entry["member_online"] is False
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    offer = await specialist.expect("offer", timeout=15)
    assert offer["request_id"] == queued["request_id"] and offer["member_online"] is False
