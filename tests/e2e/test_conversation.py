"""The whole vertical slice, over real sockets, against real uvicorn, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from tests.support.client import Client, token
from tests.support.servers import LiveService


async def _matched(live: LiveService, member_devices: int = 1) -> tuple[list[Client], Client, str]:
    async with httpx.AsyncClient(base_url=live.http) as http:
        put = await http.put(
            "/api/specialists/spec-1",
            json={"name": "Rosa", "tags": ["grief", "alcohol"], "languages": ["en"], "max_chats": 2},
            headers={"Authorization": f"Bearer {token('supervisor', 'sup-1')}"},
        )
        assert put.status_code == 200, put.text
    spec_tok = token("specialist", "spec-1", "Rosa")
    specialist, welcome = await Client.connect(live.ws, spec_tok)
    assert welcome["user"] == {"id": "spec-1", "role": "specialist", "name": "Rosa"}
    assert welcome["availability"] == "away"  # a new specialist starts away
    assert (await specialist.call({"type": "availability", "status": "available"}, "availability"))[
        "status"
    ] == "available"

    member_tok = token("member", "acct-4711", "Sam")
    members = [(await Client.connect(live.ws, member_tok))[0] for _ in range(member_devices)]
    queued = await members[0].call({"type": "request", "tags": ["grief"], "note": "hard week"}, "queued")
    assert queued["type"] == "queued" and queued["position"] == 1
    assert queued["estimated_wait_s"] >= 0

    offer = await specialist.expect("offer")
    assert offer["request_id"] == queued["request_id"]
    assert offer["note"] == "hard week" and offer["priority"] == "normal"
    assert 0 < offer["expires_in_s"] <= 30
    await specialist.send({"type": "accept", "offer_id": offer["offer_id"]})
    started = await specialist.expect("conversation_started")
    conv = started["conversation"]
    # The specialist sees the alias, never the account id.
    assert conv["member"] == {"alias": "Sam"}
    assert "acct-4711" not in str(started)
    for m in members:
        got = await m.expect("conversation_started")
        assert got["conversation"]["id"] == conv["id"]
        assert got["conversation"]["specialist"] == {"id": "spec-1", "name": "Rosa"}
    return members, specialist, conv["id"]


async def test_request_offer_accept_chat_end_feedback(live: LiveService, database_url: str) -> None:
    members, specialist, conv = await _matched(live, member_devices=2)
    phone, laptop = members

    for i in range(20):
        ack = await phone.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"m{i}", "body": f"member {i}"}, "ack"
        )
        assert ack["type"] == "ack" and ack["client_msg_id"] == f"m{i}"
        ack = await specialist.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"s{i}", "body": f"specialist {i}"},
            "ack",
        )
        assert ack["type"] == "ack"

    for device in (phone, laptop, specialist):
        seen: list[dict[str, Any]] = []
        while len(seen) < 40:
            seen.append(await device.expect("message"))
        assert [m["seq"] for m in seen] == list(range(1, 41)), "each message once, in seq order"
        assert [m["body"] for m in seen[:2]] == ["member 0", "specialist 0"]
        assert seen[0]["sender"] == {"role": "member", "name": "Sam"}
        assert seen[1]["sender"] == {"role": "specialist", "name": "Rosa"}
        assert not device.drain("message"), "no duplicates"

    await specialist.send({"type": "typing", "conversation_id": conv})
    typing = await phone.expect("typing")
    assert typing == {"type": "typing", "conversation_id": conv, "role": "specialist"}
    await phone.send({"type": "read", "conversation_id": conv, "seq": 40})
    read = await specialist.expect("read")
    assert read["seq"] == 40 and read["role"] == "member"

    history = await laptop.call(
        {"type": "history", "conversation_id": conv, "after_seq": 38, "limit": 5}, "history"
    )
    assert [m["seq"] for m in history["messages"]] == [39, 40]

    await phone.send({"type": "end", "conversation_id": conv})
    for device in (phone, laptop, specialist):
        ended = await device.expect("conversation_ended")
        assert ended == {
            "type": "conversation_ended",
            "conversation_id": conv,
            "by": "member",
            "reason": "ended",
        }

    late = await specialist.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "late", "body": "x"}, "ack"
    )
    assert late["type"] == "error" and late["code"] == "invalid_state"

    saved = await laptop.call(
        {"type": "feedback", "conversation_id": conv, "rating": 5, "comment": "thanks"}, "feedback_saved"
    )
    assert saved["type"] == "feedback_saved"

    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch("SELECT seq, body FROM messages WHERE conversation_id = $1 ORDER BY seq", conv)
        assert [r["seq"] for r in rows] == list(range(1, 41))
        assert rows[0]["body"] == "member 0"
        assert await db.fetchval("SELECT rating FROM feedback WHERE conversation_id = $1", conv) == 5
        assert await db.fetchval("SELECT active_chats FROM specialists WHERE id = 'spec-1'") == 0
    finally:
        await db.close()


async def test_resending_a_client_msg_id_stores_one_row(live: LiveService, database_url: str) -> None:
    (member,), specialist, conv = await _matched(live)
    first = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "dup", "body": "one"}, "ack"
    )
    again = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "dup", "body": "two"}, "ack"
    )
    assert first["seq"] == again["seq"] == 1
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch("SELECT body FROM messages WHERE conversation_id = $1", conv)
    finally:
        await db.close()
    assert [r["body"] for r in rows] == ["one"], "the first body wins"
    # The specialist still sees exactly one message with that seq.
    assert (await specialist.expect("message"))["body"] == "one"
    nxt = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "n", "body": "next"}, "ack"
    )
    assert nxt["seq"] == 2, "no gap after a duplicate"


async def test_resume_delivers_exactly_the_messages_after_the_given_seq(live: LiveService) -> None:
    (member,), specialist, conv = await _matched(live)
    for i in range(10):
        await specialist.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"s{i}", "body": f"b{i}"}, "ack"
        )
    await member.close()
    member_tok = token("member", "acct-4711", "Sam")
    again, welcome = await Client.connect(live.ws, member_tok, resume={conv: 6})
    assert [c["id"] for c in welcome["conversations"]] == [conv]
    assert welcome["conversations"][0]["last_seq"] == 10
    assert welcome["conversations"][0]["peer"] == {"role": "specialist", "name": "Rosa", "id": "spec-1"}
    got = [await again.expect("message") for _ in range(4)]
    assert [m["seq"] for m in got] == [7, 8, 9, 10]
    # Live messages continue the same sequence with nothing repeated.
    await specialist.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s10", "body": "live"}, "ack"
    )
    live_msg = await again.expect("message")
    assert live_msg["seq"] == 11 and live_msg["body"] == "live"
    assert not again.drain("message")


async def test_a_resume_for_someone_elses_conversation_is_ignored(live: LiveService) -> None:
    (_member,), specialist, conv = await _matched(live)
    await specialist.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s", "body": "private"}, "ack"
    )
    snoop, welcome = await Client.connect(live.ws, token("member", "someone-else"), resume={conv: 0})
    assert welcome["conversations"] == []
    refused = await snoop.call({"type": "history", "conversation_id": conv}, "history")
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    refused = await snoop.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "x", "body": "hi"}, "ack"
    )
    assert refused["code"] == "forbidden"
    refused = await snoop.call({"type": "end", "conversation_id": conv}, "conversation_ended")
    assert refused["code"] == "forbidden"
    assert not snoop.drain("message")


async def test_resuming_a_conversation_that_ended_meanwhile_says_it_ended(live: LiveService) -> None:
    (member,), specialist, conv = await _matched(live)
    await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "m0", "body": "hello"}, "ack"
    )
    await member.close()
    await specialist.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s0", "body": "bye"}, "ack"
    )
    await specialist.send({"type": "end", "conversation_id": conv})
    await specialist.expect("conversation_ended")

    again, welcome = await Client.connect(live.ws, token("member", "acct-4711", "Sam"), resume={conv: 1})
    assert welcome["conversations"] == [], "welcome lists active conversations only"
    tail = await again.expect("message")
    assert tail["seq"] == 2 and tail["body"] == "bye"
    ended = await again.expect("conversation_ended")
    assert ended["by"] == "specialist" and ended["reason"] == "ended"
    assert not again.drain("message")
    saved = await again.call({"type": "feedback", "conversation_id": conv, "rating": 4}, "feedback_saved")
    assert saved["type"] == "feedback_saved"


def _commits(metrics_text: str) -> float:
    name = "peerchat_message_commit_batch_size_count"
    line = next(x for x in metrics_text.splitlines() if x.startswith(name))
    return float(line.split()[1])


async def test_a_burst_of_sends_shares_commits_and_an_end_behind_it_waits_for_them(
    live: LiveService, database_url: str
) -> None:
    """A socket's sends are pipelined into the group commit (chat/delivery/send.py):
    30 sent back to back take a few commits, not one each, and keep their order; an `end`
    sent right behind them ends the conversation only after all 30 are stored."""
    (member,), specialist, conv = await _matched(live)
    async with httpx.AsyncClient(base_url=live.http) as http:
        before = _commits((await http.get("/metrics")).text)
        for i in range(30):
            await member.send(
                {"type": "send", "conversation_id": conv, "client_msg_id": f"b{i}", "body": f"burst {i}"}
            )
        await member.send({"type": "end", "conversation_id": conv})
        await member.expect("conversation_ended")  # the acks must have come before it
        after = _commits((await http.get("/metrics")).text)
    kinds = [f["type"] for f in member.inbox]
    assert kinds.count("ack") == 30, kinds
    acks = member.drain("ack")
    assert [a["client_msg_id"] for a in acks] == [f"b{i}" for i in range(30)]
    assert [a["seq"] for a in acks] == list(range(1, 31))
    assert after - before <= 10, f"{after - before:.0f} commits for 30 sends: they were not pipelined"
    got = [await specialist.expect("message") for _ in range(30)]
    assert [m["seq"] for m in got] == list(range(1, 31))
    assert (await specialist.expect("conversation_ended"))["conversation_id"] == conv
    db = await asyncpg.connect(database_url)
    try:
        stored = await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", conv)
        state = await db.fetchval("SELECT state FROM conversations WHERE id = $1", conv)
    finally:
        await db.close()
    assert (stored, state) == (30, "ended")


def _batches_within(metrics_text: str, bound: str) -> tuple[float, float]:
    """(batches of at most `bound` messages, all batches) from the commit-size histogram."""
    prefix = "peerchat_message_commit_batch_size"
    lines = metrics_text.splitlines()
    within = next(x for x in lines if x.startswith(f'{prefix}_bucket{{le="{bound}"}}'))
    return float(within.split()[1]), _commits(metrics_text)


async def test_a_socket_has_at_most_32_sends_waiting_for_storage(
    live: LiveService, database_url: str
) -> None:
    """While PostgreSQL is stuck (here: the conversation's row held locked), a socket's
    sends stop being read after SENDS_IN_FLIGHT, so what one client can make the process
    hold stays bounded; when storage moves again, every one is stored, in order."""
    (member,), _specialist, conv = await _matched(live)
    db = await asyncpg.connect(database_url)
    async with httpx.AsyncClient(base_url=live.http) as http:
        before = _batches_within((await http.get("/metrics")).text, "32.0")
        lock = db.transaction()
        await lock.start()
        await db.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conv)
        for i in range(40):
            await member.send(
                {"type": "send", "conversation_id": conv, "client_msg_id": f"c{i}", "body": f"stuck {i}"}
            )
        await asyncio.sleep(0.5)  # every send the server will take has been read by now
        await lock.rollback()
        acks = [await member.expect("ack") for _ in range(40)]
        after = _batches_within((await http.get("/metrics")).text, "32.0")
    await db.close()
    assert [(a["client_msg_id"], a["seq"]) for a in acks] == [(f"c{i}", i + 1) for i in range(40)]
    assert after[1] - before[1] >= 2
    assert after[0] - before[0] == after[1] - before[1], "a batch held more than 32 of one socket's sends"


async def test_a_send_right_behind_an_end_is_refused_not_stored(live: LiveService, database_url: str) -> None:
    """Sends are handled as they are read when the socket's reader is idle (gateway.py,
    on_text); one that arrives while an `end` is being handled waits for it, so it is
    refused as `invalid_state`, never stored after the end."""
    (member,), specialist, conv = await _matched(live)
    first = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "before", "body": "hi"}, "ack"
    )
    assert first["seq"] == 1
    await member.send({"type": "end", "conversation_id": conv})
    late = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "after", "body": "bye"}, "ack"
    )
    assert late["type"] == "error" and late["code"] == "invalid_state", late
    db = await asyncpg.connect(database_url)
    try:
        stored = await db.fetch("SELECT client_msg_id FROM messages WHERE conversation_id = $1", conv)
    finally:
        await db.close()
    assert [r["client_msg_id"] for r in stored] == ["before"]
    assert (await specialist.expect("conversation_ended"))["conversation_id"] == conv
