"""Transfer (PRODUCT.md §9), end to end over real processes: warm (accepted, declined,
expired), cold (ahead of the queue, never offered back, the member's messages while it
waits reach the next specialist in order), and bad input that changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from tests.support.client import Client, token
from tests.support.database import fetch
from tests.support.flows import assert_clean_log, matched, put_profile, stored_bodies
from tests.support.servers import LiveService
from tests.support.transfers import conversation_holder, say, specialist_with_profile


def _bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


async def test_warm_transfer_accepted_across_processes(service_factory: type, database_url: str) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a, member_id="acct-warm", specialist_id="spec-ana")
    conv = pair.conversation_id
    ana_b, _ = await Client.connect(b.ws, token("specialist", "spec-ana", "Rosa"))  # her second device
    ben = await specialist_with_profile(
        b, "spec-ben", "Ben"
    )  # online, `away`: a colleague may be asked directly
    assert await say(pair.member, conv, "before qt0") == 1

    asked = await pair.specialist.call(
        {
            "type": "transfer",
            "conversation_id": conv,
            "to_specialist": "spec-ben",
            "note": "likes mornings qt1",
        },
        "transfer",
    )
    assert asked == {"type": "transfer", "conversation_id": conv, "state": "waiting", "ref": asked["ref"]}
    offer = await ben.expect("offer", timeout=20)
    assert offer["transfer"] == {
        "conversation_id": conv,
        "from": {"name": "Rosa"},
        "note": "likes mornings qt1",
    }
    # Until Ben accepts, the conversation is Ana's: the member's messages reach her.
    assert await say(pair.member, conv, "still ana qt2") == 2
    await pair.specialist.expect("message", where=lambda m: m["seq"] == 2, timeout=20)

    started = await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["type"] == "conversation_started", started
    assert started["conversation"]["id"] == conv
    assert started["conversation"]["specialist"] == {"id": "spec-ben", "name": "Ben"}
    assert started["transfer"] == {"from": {"name": "Rosa"}, "note": "likes mornings qt1"}
    for device in (pair.specialist, ana_b):
        ended = await device.expect("conversation_ended", timeout=20)
        assert ended == {
            "type": "conversation_ended",
            "conversation_id": conv,
            "by": "specialist",
            "reason": "transferred",
        }
    joined = await pair.member.expect("transfer", timeout=20)
    assert joined == {
        "type": "transfer",
        "conversation_id": conv,
        "state": "joined",
        "specialist": {"id": "spec-ben", "name": "Ben"},
    }
    # Ben reads the whole history, in order, then everything live.
    for seq in (1, 2):
        got = await ben.expect("message", where=lambda m, s=seq: m["seq"] == s, timeout=20)
        assert got["conversation_id"] == conv
    assert await say(pair.member, conv, "hello ben qt3") == 3
    assert (await ben.expect("message", where=lambda m: m["seq"] == 3, timeout=20))["body"] == "hello ben qt3"
    reply = await say(ben, conv, "hi, I'm Ben")
    assert (await pair.member.expect("message", where=lambda m: m["seq"] == reply, timeout=20))["sender"] == {
        "role": "specialist",
        "name": "Ben",
    }
    # Ana lost it: nothing after her end reached any of her devices, and she cannot write.
    for device in (pair.specialist, ana_b):
        assert all(m["seq"] <= 2 for m in device.drain("message"))
    refused = await pair.specialist.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "x1", "body": "still here?"}, "ack"
    )
    assert refused["type"] == "error" and refused["code"] == "forbidden", refused
    assert await conversation_holder(database_url, conv) == ("active", "spec-ben")
    assert [
        r["kind"]
        for r in await fetch(database_url, "SELECT kind FROM staff_notes WHERE conversation_id = $1", conv)
    ] == ["transfer"]
    load = {
        r["id"]: r["active_chats"]
        for r in await fetch(database_url, "SELECT id, active_chats FROM specialists WHERE id LIKE 'spec-%'")
    }
    assert load == {"spec-ana": 0, "spec-ben": 1}
    # The member never sees the note.
    assert not any("qt1" in str(frame) for frame in pair.member.inbox)
    history = await pair.member.call({"type": "history", "conversation_id": conv}, "history")
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3, 4]
    for client in (pair.member, pair.specialist, ana_b, ben):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc, "qt0", "qt1", "qt2", "qt3")


async def test_warm_transfer_declined_then_expired_leaves_it_with_the_sender(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory(PEERCHAT_OFFER_TIMEOUT_S="2")
    pair = await matched(a, member_id="acct-stays", specialist_id="spec-keeps")
    conv = pair.conversation_id
    ben = await specialist_with_profile(a, "spec-busy", "Ben")

    await pair.specialist.call(
        {"type": "transfer", "conversation_id": conv, "to_specialist": "spec-busy", "note": "n"}, "transfer"
    )
    offer = await ben.expect("offer", timeout=20)
    declined = await ben.call({"type": "decline", "offer_id": offer["offer_id"]}, "declined")
    assert declined["type"] == "declined", declined
    failed = await pair.specialist.expect("transfer_failed", timeout=20)
    assert failed == {"type": "transfer_failed", "conversation_id": conv, "reason": "declined"}
    seq = await say(pair.member, conv, "are you there")
    await pair.specialist.expect("message", where=lambda m: m["seq"] == seq, timeout=20)

    # Asked again, and left unanswered: it expires.
    await pair.specialist.call(
        {"type": "transfer", "conversation_id": conv, "to_specialist": "spec-busy", "note": "n"}, "transfer"
    )
    second = await ben.expect("offer", timeout=20)
    # A device that connects meanwhile finds the open warm transfer in its `welcome`.
    ben_again, welcome = await Client.connect(a.ws, token("specialist", "spec-busy", "Ben"))
    [listed] = welcome["offers"]
    assert listed["offer_id"] == second["offer_id"] and listed["transfer"]["conversation_id"] == conv
    await ben_again.close()
    revoked = await ben.expect("offer_revoked", timeout=30)
    assert revoked["offer_id"] == second["offer_id"]
    failed = await pair.specialist.expect("transfer_failed", timeout=30)
    assert failed["reason"] == "expired"
    late = await ben.call({"type": "accept", "offer_id": second["offer_id"]}, "conversation_started")
    assert late["code"] == "offer_expired", late
    assert await conversation_holder(database_url, conv) == ("active", "spec-keeps")
    states = [
        r["state"] for r in await fetch(database_url, "SELECT state FROM transfers ORDER BY created_at")
    ]
    assert states == ["declined", "expired"]
    assert (
        pair.member.drain("transfer") == []
    )  # a warm transfer that did not happen is never news to the member
    seq = await say(pair.member, conv, "still with you")
    await pair.specialist.expect("message", where=lambda m: m["seq"] == seq, timeout=20)
    for client in (pair.member, pair.specialist, ben):
        await client.close()
    assert_clean_log(a)


async def test_cold_transfer_goes_first_is_never_offered_back_and_keeps_every_message(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a, member_id="acct-cold", specialist_id="spec-hands")
    conv = pair.conversation_id
    assert await say(pair.member, conv, "one") == 1
    # Someone else waits already; the transfer must still go first.
    other, _ = await Client.connect(b.ws, token("member", "acct-earlier", "Lee"))
    queued = await other.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued["type"] == "queued", queued
    # The handing-on specialist stays available with a free slot: only "never back" keeps
    # the transfer from her. (She is offered Lee's request meanwhile: decline it.)
    offered_back: list[dict[str, Any]] = []

    cold = await pair.specialist.call(
        {"type": "transfer", "conversation_id": conv, "note": "cold qc1"}, "transfer"
    )
    assert cold["state"] == "waiting"
    ended = await pair.specialist.expect("conversation_ended", timeout=20)
    assert ended["reason"] == "transferred" and ended["by"] == "specialist"
    waiting = await pair.member.expect("transfer", timeout=20)
    assert waiting == {"type": "transfer", "conversation_id": conv, "state": "waiting"}
    # While it waits, the member's messages are stored and acked, with their seq.
    assert [await say(pair.member, conv, body) for body in ("two", "three", "four")] == [2, 3, 4]

    # Nor may she claim it back by hand.
    [entry] = await fetch(database_url, "SELECT id FROM requests WHERE transfer_of = $1", conv)
    back = await pair.specialist.call({"type": "claim", "request_id": entry["id"]}, "conversation_started")
    assert (back["type"], back["code"]) == ("error", "invalid_state"), back

    ben = await specialist_with_profile(b, "spec-next", "Ben", max_chats=1)
    status = await ben.call({"type": "availability", "status": "available"}, "availability")
    assert status["type"] == "availability"
    offer = await ben.expect("offer", timeout=30)
    assert offer["transfer"] == {"conversation_id": conv, "from": {"name": "Rosa"}, "note": "cold qc1"}
    assert offer["request_id"] != queued["request_id"]
    started = await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["conversation"]["id"] == conv and started["transfer"]["from"] == {"name": "Rosa"}
    bodies = []
    for seq in (1, 2, 3, 4):
        bodies.append((await ben.expect("message", where=lambda m, s=seq: m["seq"] == s, timeout=20))["body"])
    assert bodies == ["one", "two", "three", "four"]
    joined = await pair.member.expect("transfer", timeout=20)
    assert joined["state"] == "joined" and joined["specialist"] == {"id": "spec-next", "name": "Ben"}
    assert await say(pair.member, conv, "five") == 5
    assert (await ben.expect("message", where=lambda m: m["seq"] == 5, timeout=20))["body"] == "five"

    offered_back = [o for o in pair.specialist.inbox if o["type"] == "offer" and o.get("transfer")]
    assert offered_back == []
    assert all(m["seq"] <= 1 for m in pair.specialist.drain("message"))
    assert await stored_bodies(database_url, conv) == [
        (1, "one"),
        (2, "two"),
        (3, "three"),
        (4, "four"),
        (5, "five"),
    ]
    assert await conversation_holder(database_url, conv) == ("active", "spec-next")
    rows = await fetch(database_url, "SELECT state FROM requests WHERE transfer_of = $1", conv)
    assert [r["state"] for r in rows] == ["assigned"]
    # Lee still waits: the transfer went ahead of her.
    assert (await fetch(database_url, "SELECT state FROM requests WHERE id = $1", queued["request_id"]))[0][
        "state"
    ] in (
        "waiting",
        "offered",
    )
    for client in (pair.member, pair.specialist, ben, other):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc, "qc1")


async def test_bad_transfers_get_the_right_error_and_change_nothing(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    pair = await matched(a, member_id="acct-bad", specialist_id="spec-own")
    conv = pair.conversation_id
    stranger = await specialist_with_profile(a, "spec-stranger", "Ann")
    spanish = await specialist_with_profile(a, "spec-es", "Eva", languages=["es"])
    full = await specialist_with_profile(a, "spec-full", "Fay", max_chats=1)
    barred = await specialist_with_profile(a, "spec-barred", "Bo")
    blocker = await specialist_with_profile(a, "spec-blocker", "Bea")
    await put_profile(a, "spec-offline", name="Otto", tags=["grief"])  # a profile, no connection
    db = await asyncpg.connect(database_url)
    try:
        # Fay is full: one active conversation of her own.
        await db.execute("UPDATE specialists SET active_chats = 1 WHERE id = 'spec-full'")
        # Bo was reported by this member.
        await db.execute(
            """INSERT INTO reports (id, conversation_id, member_id, specialist_id, reason, details)
               VALUES ('rep-1', $1, 'acct-bad', 'spec-barred', 'r', 'd')""",
            conv,
        )
        # Bea blocked this member (from an earlier conversation; here, this one's row).
        await db.execute(
            """INSERT INTO blocks (id, conversation_id, member_id, specialist_id, reason, until)
               VALUES ('blk-1', $1, 'acct-bad', 'spec-blocker', 'r', now() + interval '1 day')""",
            conv,
        )
    finally:
        await db.close()
    # An English-speaking member's conversation: Eva lists only Spanish.
    await db_language(database_url, conv, "en")

    def t(**kw: Any) -> dict[str, Any]:
        return {"type": "transfer", "conversation_id": conv, "note": "n", **kw}

    cases = [
        (pair.member, t(), "forbidden"),
        (stranger, t(), "forbidden"),
        (pair.specialist, {**t(), "conversation_id": "nope"}, "not_found"),
        (pair.specialist, t(to_specialist="spec-own"), "not_found"),
        (pair.specialist, t(to_specialist="spec-nobody"), "not_found"),
        (pair.specialist, t(to_specialist="spec-offline"), "invalid_state"),
        (pair.specialist, t(to_specialist="spec-es"), "invalid_state"),
        (pair.specialist, t(to_specialist="spec-full"), "invalid_state"),
        (pair.specialist, t(to_specialist="spec-barred"), "blocked"),
        (pair.specialist, t(to_specialist="spec-blocker"), "blocked"),
        (pair.specialist, {"type": "transfer"}, "bad_frame"),
    ]
    for client, frame, code in cases:
        got = await client.call(frame, "transfer")
        assert (got["type"], got.get("code")) == ("error", code), (frame, got)
    assert await fetch(database_url, "SELECT 1 FROM transfers") == []
    assert await fetch(database_url, "SELECT 1 FROM requests WHERE transfer_of IS NOT NULL") == []
    assert await conversation_holder(database_url, conv) == ("active", "spec-own")

    # The transfer dialog's list: only Ann fits (Eva lacks the language, Fay is full, Bo and
    # Bea are barred, Otto is offline; the caller is never listed).
    async with httpx.AsyncClient(base_url=a.http) as http:
        url = f"/api/conversations/{conv}/transfer-targets"
        mine = await http.get(url, headers=_bearer(token("specialist", "spec-own", "Rosa")))
        by_supervisor = await http.get(url, headers=_bearer(token("supervisor", "sup-x", "Dana")))
        not_mine = await http.get(url, headers=_bearer(token("specialist", "spec-stranger", "Ann")))
        by_member = await http.get(url, headers=_bearer(token("member", "acct-bad", "Sam")))
        unknown = await http.get(
            "/api/conversations/nope/transfer-targets", headers=_bearer(token("supervisor", "sup-x", "Dana"))
        )
    assert mine.status_code == 200, mine.text
    assert mine.json() == {
        "specialists": [
            {
                "id": "spec-stranger",
                "name": "Ann",
                "languages": ["en"],
                "tags": ["grief"],
                "active": 0,
                "max_chats": 2,
                "status": "away",
            }
        ]
    }
    assert [s["id"] for s in by_supervisor.json()["specialists"]] == ["spec-stranger"]
    assert (not_mine.status_code, by_member.status_code, unknown.status_code) == (403, 403, 404)

    # Already being transferred; then ended.
    first = await pair.specialist.call(t(to_specialist="spec-stranger"), "transfer")
    assert first["state"] == "waiting"
    again = await pair.specialist.call(t(), "transfer")
    assert again["code"] == "invalid_state"
    pending = await stranger.expect("offer", timeout=20)
    await pair.member.send({"type": "end", "conversation_id": conv})
    await pair.specialist.expect("conversation_ended", timeout=20)
    # The end cancels the transfer under way, and takes its offer back.
    withdrawn = await stranger.expect("offer_revoked", timeout=20)
    assert withdrawn == {"type": "offer_revoked", "offer_id": pending["offer_id"], "reason": "cancelled"}
    after_end = await pair.specialist.call(t(), "transfer")
    assert after_end["code"] == "invalid_state"
    assert [r["state"] for r in await fetch(database_url, "SELECT state FROM transfers")] == ["cancelled"]
    async with httpx.AsyncClient(base_url=a.http) as http:
        ended = await http.get(
            f"/api/conversations/{conv}/transfer-targets",
            headers=_bearer(token("supervisor", "sup-x", "Dana")),
        )
    assert ended.status_code == 409
    for client in (pair.member, pair.specialist, stranger, spanish, full, barred, blocker):
        await client.close()
    assert_clean_log(a)


async def db_language(database_url: str, conversation_id: str, language: str) -> None:
    db = await asyncpg.connect(database_url)
    try:
        await db.execute(
            """UPDATE requests SET language = $2
               WHERE id = (SELECT request_id FROM conversations WHERE id = $1)""",
            conversation_id,
            language,
        )
    finally:
        await db.close()


async def test_a_supervisor_transfers_any_conversation_audited(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    pair = await matched(a, member_id="acct-sup", specialist_id="spec-tired")
    conv = pair.conversation_id
    supervisor, _ = await Client.connect(a.ws, token("supervisor", "sup-t", "Dana"))
    got = await supervisor.call(
        {"type": "transfer", "conversation_id": conv, "note": "end of shift"}, "transfer"
    )
    assert got["state"] == "waiting", got
    ended = await pair.specialist.expect("conversation_ended", timeout=20)
    assert ended["reason"] == "transferred"
    assert (await pair.member.expect("transfer", timeout=20))["state"] == "waiting"
    audit = await fetch(
        database_url, "SELECT actor_id, action, conversation_id FROM audit_log WHERE action = 'transfer'"
    )
    assert [(r["actor_id"], r["conversation_id"]) for r in audit] == [("sup-t", conv)]
    for client in (pair.member, pair.specialist, supervisor):
        await client.close()


async def test_transfer_racing_end_and_two_accepts_leave_one_owner(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    for round_ in range(3):
        pair = await matched(
            a, member_id=f"acct-race{round_}", specialist_id=f"spec-r{round_}", tag=f"t{round_}"
        )
        conv = pair.conversation_id
        # A cold transfer and the member's end at the same moment, from two processes.
        await asyncio.gather(
            pair.specialist.send({"type": "transfer", "conversation_id": conv, "note": "n"}),
            pair.member.send({"type": "end", "conversation_id": conv}),
        )
        await pair.member.expect("conversation_ended", timeout=20)
        rows = await fetch(
            database_url,
            """SELECT c.state,
                      (SELECT count(*) FROM requests r
                        WHERE r.transfer_of = c.id AND r.state IN ('waiting', 'offered')) AS open,
                      (SELECT count(*) FROM transfers t
                        WHERE t.conversation_id = c.id AND t.state IN ('offered', 'queued')) AS moving
                 FROM conversations c WHERE c.id = $1""",
            conv,
        )
        assert (rows[0]["state"], rows[0]["open"], rows[0]["moving"]) == ("ended", 0, 0)
        await pair.close()

    # Warm: two devices of the target accept at once: one conversation_started, one refusal.
    pair = await matched(a, member_id="acct-two", specialist_id="spec-from", tag="two")
    conv = pair.conversation_id
    await put_profile(a, "spec-to", name="Tia", tags=["two"])
    to_a, _ = await Client.connect(a.ws, token("specialist", "spec-to", "Tia"))
    to_b, _ = await Client.connect(b.ws, token("specialist", "spec-to", "Tia"))
    await to_a.settled()
    await pair.specialist.call(
        {"type": "transfer", "conversation_id": conv, "to_specialist": "spec-to", "note": "n"}, "transfer"
    )
    offer = await to_a.expect("offer", timeout=20)
    await to_b.expect("offer", timeout=20)
    results = await asyncio.gather(
        to_a.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started"),
        to_b.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started"),
    )
    kinds = sorted(r.get("code", r["type"]) for r in results)
    assert kinds == ["conversation_started", "offer_expired"], results
    assert await conversation_holder(database_url, conv) == ("active", "spec-to")
    load = {
        r["id"]: r["active_chats"]
        for r in await fetch(database_url, "SELECT id, active_chats FROM specialists")
    }
    assert load["spec-to"] == 1 and load["spec-from"] == 0
    for client in (pair.member, pair.specialist, to_a, to_b):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc)


async def test_a_cold_transfer_is_not_ended_by_the_reconnect_grace(
    service_factory: type, database_url: str
) -> None:
    # The handing-on specialist leaves at once; their reconnect grace must not end (or
    # re-queue) the conversation now waiting for someone else.
    a: LiveService = service_factory(PEERCHAT_RECONNECT_GRACE_S="1", PEERCHAT_PRESENCE_TTL_S="2")
    pair = await matched(a, member_id="acct-grace", specialist_id="spec-leaves")
    conv = pair.conversation_id
    await pair.specialist.call({"type": "transfer", "conversation_id": conv, "note": "n"}, "transfer")
    await pair.specialist.close()
    # Past the grace and the presence TTL several times over, still waiting, still active.
    ben = await specialist_with_profile(a, "spec-later", "Ben")
    await asyncio.sleep(6)
    assert await conversation_holder(database_url, conv) == ("active", "")
    assert pair.member.drain("conversation_ended") == []
    await ben.call({"type": "availability", "status": "available"}, "availability")
    offer = await ben.expect("offer", timeout=30)
    started = await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["conversation"]["id"] == conv
    assert await conversation_holder(database_url, conv) == ("active", "spec-later")
    assert [
        r["state"]
        for r in await fetch(
            database_url, "SELECT state FROM requests WHERE member_id = 'acct-grace' ORDER BY created_at"
        )
    ] == [
        "assigned",
        "assigned",
    ]
    await pair.member.close()
    await ben.close()
    assert_clean_log(a)


async def test_a_warm_transfer_racing_the_reconnect_grace_leaves_one_owner(
    service_factory: type, database_url: str
) -> None:
    # The sender leaves right after asking; the target accepts around the moment the grace
    # ends the conversation (peer_gone). Whichever wins, one outcome, never both.
    # A grace of 2 s: the first round's accept, 0.3 s after the drop, has 1.7 s to arrive
    # (with 1 s, a stall of 0.7 s on a loaded machine made it come too late).
    a: LiveService = service_factory(PEERCHAT_RECONNECT_GRACE_S="2", PEERCHAT_PRESENCE_TTL_S="2")
    ben = await specialist_with_profile(a, "spec-catch", "Ben", max_chats=3)
    outcomes = []
    for round_, delay in enumerate((0.3, 1.8, 2.1, 2.5, 6.0)):
        pair = await matched(
            a, member_id=f"acct-g{round_}", specialist_id=f"spec-g{round_}", tag=f"g{round_}"
        )
        conv = pair.conversation_id
        await pair.specialist.call(
            {"type": "transfer", "conversation_id": conv, "to_specialist": "spec-catch", "note": "n"},
            "transfer",
        )
        offer = await ben.expect(
            "offer", where=lambda o, c=conv: o["transfer"]["conversation_id"] == c, timeout=20
        )
        await pair.specialist.close()
        await asyncio.sleep(delay)
        got = await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
        await asyncio.sleep(3.0)  # past the grace: whatever the sweep would do, it has done
        state, holder = await conversation_holder(database_url, conv)
        moved = await fetch(database_url, "SELECT state FROM transfers WHERE conversation_id = $1", conv)
        requeued = await fetch(
            database_url,
            "SELECT 1 FROM requests WHERE member_id = $1 AND state IN ('waiting', 'offered')",
            pair.member_id,
        )
        if got["type"] == "conversation_started":
            outcomes.append("taken")
            assert (state, holder, moved[0]["state"], requeued) == ("active", "spec-catch", "accepted", [])
            await ben.send({"type": "end", "conversation_id": conv})
            await ben.expect(
                "conversation_ended", where=lambda e, c=conv: e["conversation_id"] == c, timeout=20
            )
        else:
            outcomes.append("gone")
            assert got["code"] == "offer_expired", got
            assert (state, holder, moved[0]["state"], len(requeued)) == (
                "ended",
                f"spec-g{round_}",
                "cancelled",
                1,
            )
        await pair.member.close()
    load = await fetch(database_url, "SELECT id, active_chats FROM specialists WHERE active_chats <> 0")
    assert load == [], load
    # The first round is taken well within the grace, the last well past it.
    assert outcomes[0] == "taken" and outcomes[-1] == "gone", outcomes
    await ben.close()
    assert_clean_log(a)


async def test_no_message_reaches_the_handing_on_specialist_after_their_end_under_a_send_storm(
    service_factory: type, database_url: str
) -> None:
    # The member keeps sending while the transfer is accepted on another process: whatever
    # the interleaving, nothing of the conversation follows the old holder's
    # `conversation_ended` on any of their devices, and the new holder gets every message.
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    # Ben connects first: his process has long held his channel when the offer is rung.
    ben = await specialist_with_profile(b, "spec-new", "Ben")
    pair = await matched(a, member_id="acct-storm", specialist_id="spec-old")
    conv = pair.conversation_id
    old_b, _ = await Client.connect(b.ws, token("specialist", "spec-old", "Rosa"))
    await pair.specialist.call(
        {"type": "transfer", "conversation_id": conv, "to_specialist": "spec-new", "note": "n"}, "transfer"
    )
    offer = await ben.expect("offer", timeout=20)

    async def storm() -> None:
        for i in range(40):
            await pair.member.send(
                {"type": "send", "conversation_id": conv, "client_msg_id": f"s{i}", "body": f"m{i}"}
            )
            await asyncio.sleep(0.005)

    sending = asyncio.create_task(storm())
    await asyncio.sleep(0.05)
    started = await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["type"] == "conversation_started", started
    await sending
    acks = [await pair.member.expect("ack", timeout=20) for _ in range(40)]
    last = max(ack["seq"] for ack in acks)
    assert sorted(ack["seq"] for ack in acks) == list(range(1, 41))
    got = [
        await ben.expect("message", where=lambda m, s=seq: m["seq"] == s, timeout=20)
        for seq in range(1, last + 1)
    ]
    assert [m["body"] for m in got] == [f"m{i}" for i in range(40)]
    for device in (pair.specialist, old_b):
        await device.expect("conversation_ended", timeout=20)
        frames = [f for f in device.received if f.get("conversation_id") == conv]
        at = next(i for i, f in enumerate(frames) if f["type"] == "conversation_ended")
        before = [f["seq"] for f in frames[:at] if f["type"] == "message"]
        assert [f["type"] for f in frames[at + 1 :] if f["type"] == "message"] == [], (
            "a message followed the end"
        )
        # What they saw before it is a gap-free prefix of the conversation.
        assert sorted(before) == list(range(1, len(before) + 1))
    cut = (await fetch(database_url, "SELECT last_seq FROM conversations WHERE id = $1", conv))[0]["last_seq"]
    assert cut == 40
    for client in (pair.member, pair.specialist, old_b, ben):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc)
