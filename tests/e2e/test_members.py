"""Issue 18 over real sockets: opening hours and alternatives, stored read receipts, past
peers (PRODUCT.md §3, §5 v1.1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.client import Client, token
from tests.support.flows import matched, put_profile
from tests.support.servers import LiveService

ALTERNATIVES = [
    {"name": "Recovery forum", "url": "https://forum.example/", "description": "Open all night"},
    {"name": "Warm line", "url": "https://warm.example/call", "description": ""},
]
# As the wire carries them: an empty description is left out.
ALTERNATIVES_ON_THE_WIRE = [ALTERNATIVES[0], {"name": "Warm line", "url": "https://warm.example/call"}]


def _closed_now() -> tuple[dict[str, str], str]:
    """Environment for a service closed today and the next two days (UTC), and when it opens."""
    today = datetime.now(UTC).date()
    closed = ",".join((today + timedelta(days=i)).isoformat() for i in range(3))
    env = {
        "PEERCHAT_HOURS": "UTC daily 00:00-24:00",
        "PEERCHAT_CLOSED_DATES": closed,
        "PEERCHAT_ALTERNATIVES": json.dumps(ALTERNATIVES),
    }
    return env, f"{(today + timedelta(days=3)).isoformat()}T00:00:00.000Z"


async def test_closed_hours_say_so_before_asking_and_refuse_a_request(service_factory: Any) -> None:
    env, opens_at = _closed_now()
    live: LiveService = service_factory(**env)
    member, welcome = await Client.connect(live.ws, token("member", "acct-night", "Noor"))
    assert welcome["open"] is False and welcome["opens_at"] == opens_at
    assert welcome["alternatives"] == ALTERNATIVES_ON_THE_WIRE

    refused = await member.call({"type": "request", "tags": ["grief"]}, "queued")
    assert refused["type"] == "error" and refused["code"] == "closed_hours", refused
    assert refused["opens_at"] == opens_at
    assert refused["alternatives"] == ALTERNATIVES_ON_THE_WIRE
    assert refused["ref"].startswith("r")

    # Nothing was queued: a new device sees no request, and a specialist no queue entry.
    _, again = await Client.connect(live.ws, token("member", "acct-night", "Noor"))
    assert again["requests"] == []
    specialist, spec_welcome = await Client.connect(live.ws, token("specialist", "spec-night", "Ana"))
    assert spec_welcome["open"] is False and spec_welcome["opens_at"] == opens_at
    assert "alternatives" not in spec_welcome and "past_peers" not in spec_welcome
    queue = await specialist.call({"type": "queue_watch"}, "queue")
    assert queue["requests"] == []


async def test_open_service_shows_alternatives_only_while_nobody_is_online(service_factory: Any) -> None:
    live: LiveService = service_factory(
        PEERCHAT_HOURS="UTC daily 00:00-24:00", PEERCHAT_ALTERNATIVES=json.dumps(ALTERNATIVES)
    )
    _, welcome = await Client.connect(live.ws, token("member", "acct-early", "Kim"))
    assert welcome["open"] is True and "opens_at" not in welcome
    assert welcome["alternatives"] == ALTERNATIVES_ON_THE_WIRE, "no specialist online"

    member, _ = await Client.connect(live.ws, token("member", "acct-early", "Kim"))
    queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued["type"] == "queued" and queued["open"] is True
    assert queued["alternatives"] == ALTERNATIVES_ON_THE_WIRE

    await put_profile(live, "spec-day", name="Day", tags=["family"])
    specialist, _ = await Client.connect(live.ws, token("specialist", "spec-day", "Day"))
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    _, later = await Client.connect(live.ws, token("member", "acct-other", "Lee"))
    assert later["open"] is True and "alternatives" not in later, later


async def test_without_hours_the_service_is_open_and_lists_no_alternatives(live: LiveService) -> None:
    member, welcome = await Client.connect(live.ws, token("member", "acct-plain", "Bo"))
    assert welcome["open"] is True and "opens_at" not in welcome and "alternatives" not in welcome
    queued = await member.call({"type": "request"}, "queued")
    assert queued["open"] is True and "alternatives" not in queued


async def test_read_receipts_are_stored_and_survive_a_reload(live: LiveService) -> None:
    pair = await matched(live)
    conv = pair.conversation_id
    for i in range(3):
        ack = await pair.specialist.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"c{i}", "body": f"hello {i}"}, "ack"
        )
        assert ack["seq"] == i + 1
    await pair.member.send({"type": "read", "conversation_id": conv, "seq": 2})
    relayed = await pair.specialist.expect("read")
    assert relayed == {"type": "read", "conversation_id": conv, "seq": 2, "role": "member"}
    # Never backwards, never past the last message.
    await pair.member.send({"type": "read", "conversation_id": conv, "seq": 1})
    assert (await pair.specialist.expect("read"))["seq"] == 2
    await pair.member.send({"type": "read", "conversation_id": conv, "seq": 99})
    assert (await pair.specialist.expect("read"))["seq"] == 3

    # The specialist reloads: welcome and history say how far the member has read.
    reloaded, welcome = await Client.connect(live.ws, token("specialist", pair.specialist_id, "Rosa"))
    [summary] = welcome["conversations"]
    assert summary["id"] == conv and summary["peer_read_seq"] == 3
    history = await reloaded.call({"type": "history", "conversation_id": conv}, "history")
    assert history["peer_read_seq"] == 3 and [m["seq"] for m in history["messages"]] == [1, 2, 3]
    # The member's own view: the specialist has read nothing yet.
    _, member_welcome = await Client.connect(live.ws, token("member", pair.member_id, "Sam"))
    assert member_welcome["conversations"][0]["peer_read_seq"] == 0
    member_history = await pair.member.call({"type": "history", "conversation_id": conv}, "history")
    assert member_history["peer_read_seq"] == 0
    await pair.specialist.send({"type": "read", "conversation_id": conv, "seq": 3})
    assert (await pair.member.expect("read"))["role"] == "specialist"
    _, member_welcome = await Client.connect(live.ws, token("member", pair.member_id, "Sam"))
    assert member_welcome["conversations"][0]["peer_read_seq"] == 3


async def test_a_member_sees_past_peers_and_can_ask_for_one_again(live: LiveService) -> None:
    pair = await matched(live, member_id="acct-again", specialist_id="spec-rosa")
    _, during = await Client.connect(live.ws, token("member", "acct-again", "Sam"))
    assert [p["id"] for p in during["past_peers"]] == ["spec-rosa"]
    ended = await pair.member.call(
        {"type": "end", "conversation_id": pair.conversation_id}, "conversation_ended"
    )
    assert ended["type"] == "conversation_ended"

    member, welcome = await Client.connect(live.ws, token("member", "acct-again", "Sam"))
    [peer] = welcome["past_peers"]
    assert peer["id"] == "spec-rosa" and peer["name"] == "Rosa"
    last_at = datetime.fromisoformat(peer["last_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - last_at).total_seconds()) < 120
    # A stranger has no past peers; a specialist's welcome has none at all.
    _, stranger = await Client.connect(live.ws, token("member", "acct-new", "Ola"))
    assert stranger["past_peers"] == []
    _, spec_welcome = await Client.connect(live.ws, token("specialist", "spec-rosa", "Rosa"))
    assert "past_peers" not in spec_welcome

    # Ask for them again: the offer goes to that specialist, even with another one free.
    await put_profile(live, "spec-other", name="Other", tags=["grief"])
    other, _ = await Client.connect(live.ws, token("specialist", "spec-other", "Other"))
    await other.call({"type": "availability", "status": "available"}, "availability")
    queued = await member.call(
        {"type": "request", "tags": ["grief"], "prefer_specialist": peer["id"]}, "queued"
    )
    assert queued["type"] == "queued", queued
    offer = await pair.specialist.expect("offer", timeout=15)
    assert offer["request_id"] == queued["request_id"]
    assert not [f for f in other.inbox if f["type"] == "offer"]


async def test_a_long_wait_shows_the_alternatives_and_keeps_the_place(service_factory: Any) -> None:
    live: LiveService = service_factory(PEERCHAT_ALTERNATIVES=json.dumps(ALTERNATIVES))
    # Someone is online (so not "nobody online"), but away: nobody can take a request soon.
    await put_profile(live, "spec-away", name="Away", tags=["family"])
    await Client.connect(live.ws, token("specialist", "spec-away", "Away"))
    member, welcome = await Client.connect(live.ws, token("member", "acct-long", "Ira"))
    assert "alternatives" not in welcome
    queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued["estimated_wait_s"] >= 600, queued
    assert queued["alternatives"] == ALTERNATIVES_ON_THE_WIRE and queued["position"] == 1
    update = await member.expect("queue_update", timeout=15)
    assert update["estimated_wait_s"] < 600 or update["alternatives"] == ALTERNATIVES_ON_THE_WIRE
    # The place is kept: a reload still shows the request, and the alternatives with it.
    _, again = await Client.connect(live.ws, token("member", "acct-long", "Ira"))
    assert [r["request_id"] for r in again["requests"]] == [queued["request_id"]]
    assert again["alternatives"] == ALTERNATIVES_ON_THE_WIRE
