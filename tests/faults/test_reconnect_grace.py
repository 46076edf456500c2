"""A specialist drops mid-conversation: the member sees `reconnecting`; a return within
PEERCHAT_RECONNECT_GRACE_S changes nothing; past it, the member is told, the conversation
ends (by `system`, `peer_gone`) exactly once whichever process notices, and the member is
queued again at their old place, preferring the same specialist."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.faults.harness import Cluster
from tests.support.client import Client, token
from tests.support.database import stored_row

pytestmark = pytest.mark.slow

GRACE_S = 3.0
ENV = {"PEERCHAT_RECONNECT_GRACE_S": str(GRACE_S), "PEERCHAT_PRESENCE_TTL_S": "3"}
SPEC = token("specialist", "spec-1", "Rosa")
MEMBER = token("member", "acct-1", "Sam")


async def _matched(cluster: Cluster) -> tuple[Client, Client, str, str]:
    """The specialist on process 0, the member on process 1, in one conversation."""
    a, b = cluster.web[0], cluster.web[1]
    async with httpx.AsyncClient(base_url=a.http) as http:
        put = await http.put(
            "/api/specialists/spec-1",
            json={"name": "Rosa", "tags": ["grief"], "languages": ["en"], "max_chats": 2},
            headers={"Authorization": f"Bearer {token('supervisor', 'sup-1')}"},
        )
        assert put.status_code == 200, put.text
    specialist, _ = await Client.connect(a.ws, SPEC, proxy=None)
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    member, _ = await Client.connect(b.ws, MEMBER, proxy=None)
    queued = await member.call({"type": "request", "tags": ["grief"], "language": "en"}, "queued")
    offer = await specialist.expect("offer", timeout=15)
    await specialist.send({"type": "accept", "offer_id": offer["offer_id"]})
    conv = (await member.expect("conversation_started", timeout=10))["conversation"]["id"]
    ack = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "m1", "body": "hi"}, "ack"
    )
    assert ack["type"] == "ack"
    return member, specialist, conv, queued["request_id"]


def _status(conv: str, status: str) -> Any:
    return lambda f: f["conversation_id"] == conv and f["status"] == status


async def test_return_within_grace_keeps_the_conversation_and_absence_past_it_requeues(
    cluster: Cluster,
) -> None:
    cluster.env = ENV
    await cluster.start(processes=2)
    member, specialist, conv, first_request = await _matched(cluster)

    # Back within the grace (on the other process): nothing ends.
    await specialist.close()
    await member.expect("peer_status", where=_status(conv, "reconnecting"))
    await asyncio.sleep(GRACE_S / 2)
    specialist, welcome = await Client.connect(cluster.web[1].ws, SPEC, proxy=None)
    assert [c["id"] for c in welcome["conversations"]] == [conv]
    await member.expect("peer_status", where=_status(conv, "connected"))
    await asyncio.sleep(GRACE_S + 2)
    assert not member.drain("conversation_ended")
    row = await stored_row(cluster.database_url, "SELECT state FROM conversations WHERE id = $1", conv)
    assert row["state"] == "active"

    # Gone for longer than the grace.
    await specialist.close()
    left = time.monotonic()
    await member.expect("peer_status", where=_status(conv, "reconnecting"))
    await member.expect("peer_status", where=_status(conv, "gone"), timeout=GRACE_S + 5)
    told_after = time.monotonic() - left
    ended = await member.expect("conversation_ended")
    assert ended == {
        "type": "conversation_ended",
        "conversation_id": conv,
        "by": "system",
        "reason": "peer_gone",
    }
    update = await member.expect("queue_update", where=lambda f: f["request_id"] != first_request)
    assert update["position"] == 1
    await asyncio.sleep(1.5)  # both processes sweep; only one may end it
    assert not member.drain("conversation_ended"), "ended once"
    assert GRACE_S <= told_after <= GRACE_S + 3, told_after

    c = await stored_row(
        cluster.database_url, "SELECT state, ended_by, end_reason FROM conversations WHERE id = $1", conv
    )
    assert (c["state"], c["ended_by"], c["end_reason"]) == ("ended", "system", "peer_gone")
    again = await stored_row(
        cluster.database_url,
        """SELECT r.id, r.tags, r.language, r.prefer_specialist, r.created_at, o.created_at AS original
           FROM requests r JOIN requests o ON o.id = $1 WHERE r.member_id = 'acct-1' AND r.id <> $1""",
        first_request,
    )
    assert again["id"] == update["request_id"]
    assert (again["tags"], again["language"], again["prefer_specialist"]) == (["grief"], "en", "spec-1")
    assert again["created_at"] == again["original"], "keeps the place it had"
    spec = await stored_row(cluster.database_url, "SELECT active_chats FROM specialists WHERE id = 'spec-1'")
    assert spec["active_chats"] == 0

    # The specialist comes back (still `available`): the same member is offered to them.
    specialist, _ = await Client.connect(cluster.web[0].ws, SPEC, proxy=None)
    offer = await specialist.expect("offer", timeout=15)
    assert offer["request_id"] == update["request_id"]
    await specialist.close()
    await member.close()
    print(f"\nmember told `gone` {told_after:.1f} s after the drop (grace {GRACE_S} s)")


async def test_a_specialist_whose_process_dies_counts_as_gone_too(cluster: Cluster) -> None:
    cluster.env = ENV
    await cluster.start(processes=2)
    member, specialist, conv, _ = await _matched(cluster)
    cluster.web[0].kill()  # the specialist's process: no socket close, no presence update
    killed = time.monotonic()
    await member.expect("peer_status", where=_status(conv, "reconnecting"), timeout=10)
    noticed = time.monotonic() - killed
    await member.expect("peer_status", where=_status(conv, "gone"), timeout=GRACE_S + 5)
    gone = time.monotonic() - killed
    ended = await member.expect("conversation_ended")
    assert ended["by"] == "system" and ended["reason"] == "peer_gone"
    # presence TTL (lease ages out) + one sweep, then the grace
    assert noticed <= 3 + 2 and gone >= noticed + GRACE_S - 0.5, (noticed, gone)
    await member.close()
    print(f"\nprocess killed: member told `reconnecting` after {noticed:.1f} s, `gone` after {gone:.1f} s")
