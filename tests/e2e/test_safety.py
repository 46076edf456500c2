"""Safety inside the conversation (PRODUCT.md §8), end to end over two real processes:
the risk check on every member message, persistent alerts and their acknowledgement,
the `crisis` tag, flags."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.client import Client, token
from tests.support.database import stored_row
from tests.support.flows import assert_clean_log, matched, put_profile
from tests.support.servers import LiveService, wait_until


def _has_alert(kind: str, **fields: Any) -> Any:
    def check(frame: dict[str, Any]) -> bool:
        return any(
            a["kind"] == kind and all(a.get(k) == v for k, v in fields.items()) for a in frame["alerts"]
        )

    return check


async def _supervisor(live: LiveService, sub: str = "sup-1", name: str = "Dana") -> Client:
    supervisor, _ = await Client.connect(live.ws, token("supervisor", sub, name))
    await supervisor.call({"type": "watch_queues"}, "queue_stats")
    return supervisor


async def test_a_risk_phrase_hidden_with_a_zero_width_space_reaches_specialist_and_supervisors(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a)
    # The specialist's second device and the supervisor live on the other process.
    specialist_b, _ = await Client.connect(b.ws, token("specialist", pair.specialist_id, "Rosa"))
    supervisor = await _supervisor(b)

    hidden = "honestly I want to k\u200bill my\u200dself tonight"
    ack = await pair.member.call(
        {"type": "send", "conversation_id": pair.conversation_id, "client_msg_id": "m1", "body": hidden},
        "ack",
    )
    assert ack["type"] == "ack" and ack["seq"] == 1
    own = await pair.member.expect("message", where=lambda m: m["seq"] == 1)
    assert own["body"] == hidden  # stored and delivered unchanged

    for device in (pair.specialist, specialist_b):
        message = await device.expect("message", where=lambda m: m["seq"] == 1)
        assert message["body"] == hidden
        risk = await device.expect("risk", timeout=20)
        assert risk == {"type": "risk", "conversation_id": pair.conversation_id, "level": "high", "seq": 1}
    stats = await supervisor.expect(
        "queue_stats", where=_has_alert("risk_message", conversation_id=pair.conversation_id), timeout=20
    )
    [alert] = [x for x in stats["alerts"] if x["kind"] == "risk_message"]
    assert alert["level"] == "high" and alert["id"]
    assert "body" not in alert

    # Sticky and once: a second disclosure raises nothing new; the member never hears of it.
    ack2 = await pair.member.call(
        {
            "type": "send",
            "conversation_id": pair.conversation_id,
            "client_msg_id": "m2",
            "body": "I want to die",
        },
        "ack",
    )
    assert ack2["seq"] == 2
    await pair.specialist.expect("message", where=lambda m: m["seq"] == 2)
    ack3 = await pair.specialist.call(
        {"type": "send", "conversation_id": pair.conversation_id, "client_msg_id": "s1", "body": "I'm here"},
        "ack",
    )
    await pair.member.expect("message", where=lambda m: m["seq"] == ack3["seq"])
    assert [f["type"] for f in pair.member.inbox if f["type"] in ("risk", "flagged", "alert_acked")] == []
    row = await stored_row(database_url, "SELECT risk FROM conversations WHERE id = $1", pair.conversation_id)
    assert row["risk"] == "high"
    count = await stored_row(
        database_url, "SELECT count(*) AS n FROM alerts WHERE conversation_id = $1", pair.conversation_id
    )
    assert count["n"] == 1
    assert pair.specialist.drain("risk") == []
    # The specialist's own words are never checked (it is the member's disclosure that counts).
    await pair.specialist.call(
        {"type": "send", "conversation_id": pair.conversation_id, "client_msg_id": "s2", "body": "suicide?"},
        "ack",
    )
    for client in (pair.member, pair.specialist, specialist_b, supervisor):
        await client.close()
    assert_clean_log(a, hidden, "I want to die")
    assert_clean_log(b, hidden)


async def test_a_crisis_request_alerts_and_the_alert_survives_restarts_until_acknowledged(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    member, _ = await Client.connect(a.ws, token("member", "acct-9", "Kim"))
    queued = await member.call({"type": "request", "tags": ["crisis"]}, "queued")
    request_id = queued["request_id"]
    row = await stored_row(database_url, "SELECT priority FROM requests WHERE id = $1", request_id)
    assert row["priority"] == "urgent"  # the crisis tag alone makes it urgent
    watcher = await _supervisor(b, "sup-1", "Dana")
    stats = await watcher.expect("queue_stats", where=_has_alert("urgent_request", request_id=request_id))
    [alert] = [x for x in stats["alerts"] if x["request_id"] == request_id]
    await member.close()
    await watcher.close()

    # Every web process restarts: the alert is still open.
    a.stop()
    b.stop()
    c: LiveService = service_factory()
    d: LiveService = service_factory()
    acker = await _supervisor(c, "sup-2", "Lee")
    other = await _supervisor(d, "sup-3", "Ola")
    stats = await acker.call({"type": "watch_queues"}, "queue_stats")
    [still] = [x for x in stats["alerts"] if x["id"] == alert["id"]]
    assert still["kind"] == "urgent_request" and still["waited_s"] >= alert["waited_s"]  # it still waits

    acked = await acker.call({"type": "ack_alert", "alert_id": alert["id"]}, "alert_acked")
    assert acked["type"] == "alert_acked", acked
    assert acked["by"] == {"name": "Lee"}
    seen = await other.expect("alert_acked", where=lambda x: x["alert_id"] == alert["id"], timeout=15)
    assert seen["by"] == {"name": "Lee"} and "ref" not in seen
    await other.expect(
        "queue_stats", where=lambda x: all(y["id"] != alert["id"] for y in x["alerts"]), timeout=20
    )

    again = await other.call({"type": "ack_alert", "alert_id": alert["id"]}, "alert_acked")
    assert again["type"] == "error" and again["code"] == "invalid_state"
    unknown = await other.call({"type": "ack_alert", "alert_id": "nope"}, "alert_acked")
    assert unknown["type"] == "error" and unknown["code"] == "not_found"
    specialist, _ = await Client.connect(c.ws, token("specialist", "spec-7", "Rosa"))
    refused = await specialist.call({"type": "ack_alert", "alert_id": alert["id"]}, "alert_acked")
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    audit = await stored_row(
        database_url, "SELECT actor_name, target FROM audit_log WHERE action = 'ack_alert'"
    )
    assert (audit["actor_name"], audit["target"]) == ("Lee", alert["id"])
    # Still connected after every refusal.
    assert (await other.call({"type": "watch_queues"}, "queue_stats"))["type"] == "queue_stats"
    for client in (acker, other, specialist):
        await client.close()


async def test_a_specialist_flags_for_support_and_others_may_not(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a)
    supervisor = await _supervisor(b)
    flagged = await pair.specialist.call(
        {
            "type": "flag",
            "conversation_id": pair.conversation_id,
            "level": "concern",
            "note": "mentions a plan",
        },
        "flagged",
    )
    assert flagged["type"] == "flagged" and flagged["conversation_id"] == pair.conversation_id
    stats = await supervisor.expect(
        "queue_stats", where=_has_alert("flagged", id=flagged["alert_id"]), timeout=20
    )
    [alert] = [x for x in stats["alerts"] if x["id"] == flagged["alert_id"]]
    assert (alert["level"], alert["note"], alert["conversation_id"]) == (
        "concern",
        "mentions a plan",
        pair.conversation_id,
    )
    row = await stored_row(
        database_url, "SELECT risk, flags FROM conversations WHERE id = $1", pair.conversation_id
    )
    assert (row["risk"], row["flags"]) == (None, ["concern"])

    by_member = await pair.member.call(
        {"type": "flag", "conversation_id": pair.conversation_id, "level": "high"}, "flagged"
    )
    assert by_member["code"] == "forbidden"
    stranger, _ = await Client.connect(b.ws, token("specialist", "spec-other", "Ann"))
    by_stranger = await stranger.call(
        {"type": "flag", "conversation_id": pair.conversation_id, "level": "high"}, "flagged"
    )
    assert by_stranger["code"] == "forbidden"
    unknown = await stranger.call({"type": "flag", "conversation_id": "nope", "level": "high"}, "flagged")
    assert unknown["code"] == "not_found"
    row = await stored_row(
        database_url, "SELECT risk, flags FROM conversations WHERE id = $1", pair.conversation_id
    )
    assert (row["risk"], row["flags"]) == (None, ["concern"])  # nothing stored by the refusals

    high = await pair.specialist.call(
        {"type": "flag", "conversation_id": pair.conversation_id, "level": "high"}, "flagged"
    )
    assert high["type"] == "flagged"
    await supervisor.expect(
        "queue_stats", where=_has_alert("risk_message", conversation_id=pair.conversation_id), timeout=20
    )

    async def marked() -> bool:
        got = await stored_row(
            database_url, "SELECT risk FROM conversations WHERE id = $1", pair.conversation_id
        )
        return bool(got["risk"] == "high")

    await wait_until(marked)
    # Every refused client is still connected.
    for client in (pair.member, stranger):
        assert (await client.call({"type": "history", "conversation_id": "nope"}, "history"))[
            "type"
        ] == "error"
    for client in (pair.member, pair.specialist, stranger, supervisor):
        await client.close()
    assert_clean_log(a, "mentions a plan")
    assert_clean_log(b, "mentions a plan")


async def test_supervisors_list_conversations_by_state_and_risk_without_bodies(live: LiveService) -> None:
    calm = await matched(live, member_id="acct-calm", specialist_id="spec-a", tag="grief")
    risky = await matched(live, member_id="acct-risky", specialist_id="spec-b", tag="alcohol")
    body = "a very private sentence"
    await calm.member.call(
        {"type": "send", "conversation_id": calm.conversation_id, "client_msg_id": "x", "body": body}, "ack"
    )
    await risky.specialist.call(
        {"type": "flag", "conversation_id": risky.conversation_id, "level": "high", "note": "plan"}, "flagged"
    )
    await calm.member.call({"type": "end", "conversation_id": calm.conversation_id}, "conversation_ended")
    headers = {"Authorization": f"Bearer {token('supervisor', 'sup-9', 'Dana')}"}
    async with httpx.AsyncClient(base_url=live.http, headers=headers) as http:
        everything = await http.get("/api/conversations")
        assert everything.status_code == 200, everything.text
        listed = everything.json()["conversations"]
        assert [c["id"] for c in listed] == [risky.conversation_id, calm.conversation_id]  # newest first
        first = listed[0]
        assert first["risk"] == "high" and first["flags"] == ["high"] and first["state"] == "active"
        assert first["member"] == {"alias": "Sam"}
        assert first["specialist"] == {"id": "spec-b", "name": "Rosa"}
        assert first["priority"] == "normal" and first["tags"] == ["alcohol"] and first["ended_at"] is None
        assert listed[1]["state"] == "ended" and listed[1]["ended_at"] and listed[1]["risk"] is None
        for secret in (body, "acct-calm", "acct-risky", "plan"):
            assert secret not in everything.text

        at_risk = (await http.get("/api/conversations", params={"risk": "high", "state": "active"})).json()
        assert [c["id"] for c in at_risk["conversations"]] == [risky.conversation_id]
        ended = (await http.get("/api/conversations", params={"state": "ended"})).json()
        assert [c["id"] for c in ended["conversations"]] == [calm.conversation_id]
        page = (await http.get("/api/conversations", params={"limit": "1"})).json()["conversations"]
        older = await http.get("/api/conversations", params={"limit": "1", "before": page[0]["id"]})
        assert [c["id"] for c in older.json()["conversations"]] == [calm.conversation_id]

        for bad, status in [
            ({"state": "open"}, 422),
            ({"risk": "low"}, 422),
            ({"limit": "0"}, 400),
            ({"limit": "501"}, 400),
            ({"limit": "ten"}, 400),
            ({"before": "nope"}, 422),
            ({"before": "x" * 65}, 400),
            ({"order": "asc"}, 400),
        ]:
            refused = await http.get("/api/conversations", params=bad)
            assert refused.status_code == status, (bad, refused.text)
        as_member = await http.get(
            "/api/conversations", headers={"Authorization": f"Bearer {token('member', 'acct-calm')}"}
        )
        assert as_member.status_code == 403
        assert (await http.get("/api/conversations", headers={"Authorization": ""})).status_code == 401
    for pair in (calm, risky):
        await pair.close()


async def test_a_specialist_at_the_urgent_cap_gets_normal_offers_only_but_may_claim_urgent(
    live: LiveService,
) -> None:
    await put_profile(live, "spec-c", name="Rosa", tags=["crisis"], max_chats=3)
    specialist, _ = await Client.connect(live.ws, token("specialist", "spec-c", "Rosa"))
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    first, _ = await Client.connect(live.ws, token("member", "acct-u1", "Ann"))
    q1 = await first.call({"type": "request", "note": "I want to die"}, "queued")
    offer = await specialist.expect("offer", where=lambda o: o["request_id"] == q1["request_id"], timeout=15)
    assert offer["priority"] == "urgent"
    await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")

    # At the cap (1 urgent conversation): a second urgent request waits, first in line...
    second, _ = await Client.connect(live.ws, token("member", "acct-u2", "Bo"))
    q2 = await second.call({"type": "request", "note": "I can\u2019t go on"}, "queued")
    third, _ = await Client.connect(live.ws, token("member", "acct-n3", "Cy"))
    q3 = await third.call({"type": "request"}, "queued")
    assert q3["position"] == 2  # behind the urgent one
    # ...and the normal request behind it is offered to the specialist instead.
    offered = await specialist.expect("offer", timeout=15)
    assert offered["request_id"] == q3["request_id"], offered
    assert not [o for o in specialist.inbox if o["type"] == "offer" and o["request_id"] == q2["request_id"]]
    # A hand claim is still allowed.
    claimed = await specialist.call({"type": "claim", "request_id": q2["request_id"]}, "conversation_started")
    assert claimed["type"] == "conversation_started", claimed
    for client in (specialist, first, second, third):
        await client.close()


async def test_monitor_streams_history_then_live_with_no_gap_or_repeat_across_processes(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a)
    conv = pair.conversation_id
    sent = 0

    async def say(client: Client, body: str) -> int:
        nonlocal sent
        sent += 1
        ack = await client.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"c{sent}", "body": body}, "ack"
        )
        assert ack["type"] == "ack", ack
        return int(ack["seq"])

    for i in range(6):
        await say(pair.member if i % 2 else pair.specialist, f"before {i}")

    supervisor, _ = await Client.connect(b.ws, token("supervisor", "sup-m", "Dana"))
    # Refusals first: nothing is audited or sent for them, and the socket stays open.
    for bad, code in [
        ({"conversation_id": conv}, "forbidden"),  # no reason
        ({"conversation_id": conv, "reason": "   "}, "forbidden"),
        ({"conversation_id": "nope", "reason": "check"}, "not_found"),
    ]:
        refused = await supervisor.call({"type": "monitor", **bad}, "history")
        assert refused["type"] == "error" and refused["code"] == code, (bad, refused)
    by_specialist = await pair.specialist.call(
        {"type": "monitor", "conversation_id": conv, "reason": "x"}, "history"
    )
    assert by_specialist["code"] == "forbidden"
    not_watching = await supervisor.call({"type": "unmonitor", "conversation_id": conv}, "monitoring")
    assert not_watching["code"] == "invalid_state"

    async def chatter() -> None:
        for i in range(30):
            await say(pair.member if i % 2 else pair.specialist, f"during {i}")

    talking = asyncio.create_task(chatter())
    await asyncio.sleep(0.2)
    history = await supervisor.call(
        {"type": "monitor", "conversation_id": conv, "reason": "risk review", "emergency": True},
        "history",
        timeout=20,
    )
    assert history["type"] == "history", history
    watching = await pair.specialist.expect("monitoring", timeout=15)
    assert watching == {"type": "monitoring", "conversation_id": conv, "watching": True}
    await talking
    last = await say(pair.member, "I want to die")
    risk = await supervisor.expect("risk", timeout=20)
    assert risk["seq"] == last

    await supervisor.expect("message", where=lambda m: m["seq"] == last, timeout=20)
    live = [m["seq"] for m in supervisor.drain("message")] + [last]
    seqs = [m["seq"] for m in history["messages"]] + live
    assert seqs == list(range(1, last + 1)), seqs  # no gap, no repeat, in order
    assert all(m["conversation_id"] == conv for m in history["messages"])
    assert len(history["messages"]) >= 6

    twice = await supervisor.call({"type": "monitor", "conversation_id": conv, "reason": "again"}, "history")
    assert twice["code"] == "invalid_state"
    # Read-only: a watching supervisor who has not joined may not send.
    refused_send = await supervisor.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s", "body": "hi"}, "ack"
    )
    assert refused_send["code"] == "forbidden"

    row = await stored_row(
        database_url, "SELECT reason, detail::text AS detail FROM audit_log WHERE action = 'monitor'"
    )
    assert row["reason"] == "risk review" and '"emergency": true' in row["detail"]

    await pair.member.call({"type": "end", "conversation_id": conv}, "conversation_ended")
    ended = await supervisor.expect("conversation_ended", timeout=20)
    assert ended["conversation_id"] == conv
    for client in (pair.member, pair.specialist, supervisor):
        await client.close()
    assert_clean_log(a, "I want to die")
    assert_clean_log(b, "I want to die")


async def test_unmonitor_stops_the_stream_and_tells_the_specialist(service_factory: type) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a)
    conv = pair.conversation_id
    supervisor, _ = await Client.connect(b.ws, token("supervisor", "sup-u", "Lee"))
    await supervisor.call({"type": "monitor", "conversation_id": conv, "reason": "spot check"}, "history")
    await pair.specialist.expect("monitoring", where=lambda m: m["watching"], timeout=15)
    first = await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "m1", "body": "hello"}, "ack"
    )
    await supervisor.expect("message", where=lambda m: m["seq"] == first["seq"], timeout=20)
    stopped = await supervisor.call({"type": "unmonitor", "conversation_id": conv}, "monitoring")
    assert stopped["watching"] is False
    await pair.specialist.expect("monitoring", where=lambda m: not m["watching"], timeout=15)
    second = await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "m2", "body": "still here"}, "ack"
    )
    await pair.specialist.expect("message", where=lambda m: m["seq"] == second["seq"], timeout=15)
    # The supervisor's socket is still open and gets nothing more of the conversation.
    assert (await supervisor.call({"type": "watch_queues"}, "queue_stats"))["type"] == "queue_stats"
    assert [m for m in supervisor.inbox if m.get("conversation_id") == conv] == []
    for client in (pair.member, pair.specialist, supervisor):
        await client.close()


async def test_wrap_up_holds_offers_and_claims_until_saved_or_over(service_factory: type) -> None:
    live: LiveService = service_factory(PEERCHAT_WRAP_UP_S="60", PEERCHAT_WRAP_UP_URGENT_S="8")
    pair = await matched(live)
    supervisor = await _supervisor(live)
    early = await pair.specialist.call(
        {"type": "wrap_up", "conversation_id": pair.conversation_id, "outcome": "x", "risk_level": "none"},
        "wrap_up_saved",
    )
    assert early["code"] == "invalid_state"  # not ended yet
    await pair.member.call({"type": "end", "conversation_id": pair.conversation_id}, "conversation_ended")
    notice = await pair.specialist.expect("availability", where=lambda a: a.get("wrap_up_until"), timeout=15)
    assert notice["status"] == "available"
    await supervisor.expect("queue_stats", where=lambda s: s["specialists"].get("wrap_up") == 1, timeout=20)

    # A new member asks: no offer during the wrap-up, and a claim is refused.
    other, _ = await Client.connect(live.ws, token("member", "acct-next", "Jo"))
    queued = await other.call({"type": "request", "tags": ["grief"]}, "queued")
    claim = await pair.specialist.call(
        {"type": "claim", "request_id": queued["request_id"]}, "conversation_started"
    )
    assert claim["type"] == "error" and claim["code"] == "wrap_up"
    # The welcome of a new device says so too.
    second, welcome = await Client.connect(live.ws, token("specialist", pair.specialist_id, "Rosa"))
    assert welcome["wrap_up_until"] == notice["wrap_up_until"]
    assert not [f for f in pair.specialist.inbox if f["type"] == "offer"]

    stranger, _ = await Client.connect(live.ws, token("specialist", "spec-x", "Ann"))
    not_theirs = await stranger.call(
        {"type": "wrap_up", "conversation_id": pair.conversation_id, "outcome": "x", "risk_level": "low"},
        "wrap_up_saved",
    )
    assert not_theirs["code"] == "not_found"
    saved = await pair.specialist.call(
        {
            "type": "wrap_up",
            "conversation_id": pair.conversation_id,
            "outcome": "talked it through",
            "risk_level": "low",
            "note": "follow up next week",
        },
        "wrap_up_saved",
    )
    assert saved["type"] == "wrap_up_saved" and saved["wrap_up_until"] < notice["wrap_up_until"]
    # Ended early (not urgent): the waiting request is offered now.
    offer = await pair.specialist.expect(
        "offer", where=lambda o: o["request_id"] == queued["request_id"], timeout=20
    )
    assert offer["priority"] == "normal"
    for client in (pair.member, pair.specialist, supervisor, other, second, stranger):
        await client.close()


async def test_an_urgent_wrap_up_keeps_half_its_length(service_factory: type) -> None:
    live: LiveService = service_factory(PEERCHAT_WRAP_UP_S="1", PEERCHAT_WRAP_UP_URGENT_S="60")
    await put_profile(live, "spec-u", name="Rosa", tags=["crisis"], max_chats=2)
    specialist, _ = await Client.connect(live.ws, token("specialist", "spec-u", "Rosa"))
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    member, _ = await Client.connect(live.ws, token("member", "acct-u", "Ann"))
    await member.call({"type": "request", "note": "I want to end my life"}, "queued")
    offer = await specialist.expect("offer", timeout=15)
    started = await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    conv = started["conversation"]["id"]
    ended = await specialist.call({"type": "end", "conversation_id": conv}, "conversation_ended")
    assert ended["type"] == "conversation_ended"
    notice = await specialist.expect("availability", where=lambda a: a.get("wrap_up_until"), timeout=15)
    saved = await specialist.call(
        {"type": "wrap_up", "conversation_id": conv, "outcome": "safety plan made", "risk_level": "high"},
        "wrap_up_saved",
    )
    full = datetime.fromisoformat(notice["wrap_up_until"])
    kept = datetime.fromisoformat(saved["wrap_up_until"])
    assert timedelta(seconds=25) <= full - kept <= timedelta(seconds=35)  # half of 60 s is kept
    assert kept - datetime.now(UTC) > timedelta(seconds=20)
    for client in (specialist, member):
        await client.close()


async def test_a_watching_supervisor_whispers_to_the_specialist_only(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a)
    conv = pair.conversation_id
    supervisor, _ = await Client.connect(b.ws, token("supervisor", "sup-w", "Dana"))
    words = "Ask about their safety plan."
    refused = await supervisor.call({"type": "whisper", "conversation_id": conv, "body": words}, "whisper")
    assert refused["code"] == "forbidden"  # not watching
    by_specialist = await pair.specialist.call(
        {"type": "whisper", "conversation_id": conv, "body": "x"}, "whisper"
    )
    assert by_specialist["code"] == "forbidden"
    await supervisor.call({"type": "monitor", "conversation_id": conv, "reason": "coaching"}, "history")

    echo = await supervisor.call({"type": "whisper", "conversation_id": conv, "body": words}, "whisper")
    assert echo["type"] == "whisper" and echo["body"] == words
    got = await pair.specialist.expect("whisper", timeout=15)
    assert got["from"] == {"name": "Dana"} and got["body"] == words and got["conversation_id"] == conv
    assert "ref" not in got
    # The member sees nothing of it: a round trip after it shows only the normal frames.
    ack = await pair.specialist.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s1", "body": "How are you keeping safe?"},
        "ack",
    )
    await pair.member.expect("message", where=lambda m: m["seq"] == ack["seq"], timeout=15)
    assert [f for f in pair.member.inbox if f["type"] in ("whisper", "note_saved", "monitoring")] == []
    row = await stored_row(
        database_url, "SELECT kind, body, author_name FROM staff_notes WHERE conversation_id = $1", conv
    )
    assert (row["kind"], row["body"], row["author_name"]) == ("whisper", words, "Dana")
    member_history = await pair.member.call({"type": "history", "conversation_id": conv}, "history")
    assert words not in str(member_history)
    for client in (pair.member, pair.specialist, supervisor):
        await client.close()
    assert_clean_log(a, words)
    assert_clean_log(b, words)


async def test_a_supervisor_joins_speaks_as_supervisor_and_leaves(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a)
    conv = pair.conversation_id
    await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "m1", "body": "hi"}, "ack"
    )
    supervisor, _ = await Client.connect(b.ws, token("supervisor", "sup-j", "Dana"))
    no_reason = await supervisor.call({"type": "join", "conversation_id": conv}, "participant_joined")
    assert no_reason["code"] == "forbidden"
    by_member = await pair.member.call(
        {"type": "join", "conversation_id": conv, "reason": "x"}, "participant_joined"
    )
    assert by_member["code"] == "forbidden"
    not_joined = await supervisor.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s0", "body": "hello"}, "ack"
    )
    assert not_joined["code"] == "forbidden"

    joined = await supervisor.call(
        {"type": "join", "conversation_id": conv, "reason": "the member asked for more help"},
        "participant_joined",
    )
    assert joined == {
        "type": "participant_joined",
        "conversation_id": conv,
        "role": "supervisor",
        "name": "Dana",
        "ref": joined["ref"],
    }
    history = await supervisor.expect("history")
    assert [m["seq"] for m in history["messages"]] == [1]
    for side in (pair.member, pair.specialist):
        told = await side.expect("participant_joined", timeout=15)
        assert (told["role"], told["name"]) == ("supervisor", "Dana")
    again = await supervisor.call(
        {"type": "join", "conversation_id": conv, "reason": "again"}, "participant_joined"
    )
    assert again["code"] == "invalid_state"

    ack = await supervisor.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s1", "body": "I'm Dana, a supervisor."},
        "ack",
    )
    assert ack["type"] == "ack" and ack["seq"] == 2
    for side in (pair.member, pair.specialist):
        message = await side.expect("message", where=lambda m: m["seq"] == 2, timeout=15)
        assert message["sender"] == {"role": "supervisor", "name": "Dana"}
    # The pair's next message follows on, and the supervisor sees it live.
    reply = await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "m2", "body": "ok"}, "ack"
    )
    assert reply["seq"] == 3
    await supervisor.expect("message", where=lambda m: m["seq"] == 3, timeout=20)
    row = await stored_row(database_url, "SELECT count(*) AS n FROM audit_log WHERE action = 'join'")
    assert row["n"] == 1

    left = await supervisor.call({"type": "leave", "conversation_id": conv}, "participant_left")
    assert left["type"] == "participant_left"
    for side in (pair.member, pair.specialist):
        await side.expect("participant_left", timeout=15)
    after = await supervisor.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "s2", "body": "x"}, "ack"
    )
    assert after["code"] == "forbidden"
    twice = await supervisor.call({"type": "leave", "conversation_id": conv}, "participant_left")
    assert twice["code"] == "invalid_state"
    for client in (pair.member, pair.specialist, supervisor):
        await client.close()
