"""Handoffs and boundaries (PRODUCT.md §9), end to end over two real processes: staff
notes reach every staff device and never a member."""

from __future__ import annotations

import httpx

from tests.support.client import Client, token
from tests.support.database import fetch
from tests.support.flows import assert_clean_log, matched
from tests.support.servers import LiveService
from tests.support.transfers import available_specialist


async def test_staff_notes_reach_every_staff_device_and_never_the_member(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a, member_id="acct-notes", specialist_id="spec-notes")
    conv = pair.conversation_id
    # The specialist's second device and a watching supervisor live on the other process.
    specialist_b, _ = await Client.connect(b.ws, token("specialist", pair.specialist_id, "Rosa"))
    supervisor, _ = await Client.connect(b.ws, token("supervisor", "sup-notes", "Dana"))
    history = await supervisor.call(
        {"type": "monitor", "conversation_id": conv, "reason": "review"}, "history"
    )
    assert history["type"] == "history", history
    await pair.specialist.expect("monitoring", where=lambda m: m["watching"])

    saved = await pair.specialist.call(
        {"type": "note", "conversation_id": conv, "body": "  sister visits on sundays qx1 "}, "note_saved"
    )
    assert saved["type"] == "note_saved", saved
    note = saved["note"]
    assert note["author"] == {"role": "specialist", "name": "Rosa"}
    assert note["body"] == "sister visits on sundays qx1" and note["id"] and note["at"]
    for device in (specialist_b, supervisor):
        got = await device.expect("note_saved", timeout=20)
        assert got == {"type": "note_saved", "conversation_id": conv, "note": note}

    by_supervisor = await supervisor.call(
        {"type": "note", "conversation_id": conv, "body": "check in tomorrow qx2"}, "note_saved"
    )
    assert by_supervisor["note"]["author"] == {"role": "supervisor", "name": "Dana"}
    for device in (pair.specialist, specialist_b):
        got = await device.expect(
            "note_saved", where=lambda m: m["note"]["body"] == "check in tomorrow qx2", timeout=20
        )
        assert got["conversation_id"] == conv
    assert supervisor.drain("note_saved") == []  # its own reply only, not a second copy

    listed = await specialist_b.call({"type": "notes", "conversation_id": conv}, "notes")
    assert [(n["author"]["role"], n["body"]) for n in listed["notes"]] == [
        ("specialist", "sister visits on sundays qx1"),
        ("supervisor", "check in tomorrow qx2"),
    ]

    # The member: refused both frames, and told nothing.
    for frame in (
        {"type": "note", "conversation_id": conv, "body": "x"},
        {"type": "notes", "conversation_id": conv},
    ):
        refused = await pair.member.call(frame, "notes")
        assert (refused["type"], refused["code"]) == ("error", "forbidden")
    stranger, _ = await Client.connect(b.ws, token("specialist", "spec-stranger", "Ann"))
    for frame in (
        {"type": "note", "conversation_id": conv, "body": "x"},
        {"type": "notes", "conversation_id": conv},
    ):
        refused = await stranger.call(frame, "notes")
        assert refused["code"] == "forbidden"
    assert (await stranger.call({"type": "notes", "conversation_id": "nope"}, "notes"))["code"] == "not_found"
    blank = await pair.specialist.call({"type": "note", "conversation_id": conv, "body": "   "}, "note_saved")
    assert blank["code"] == "bad_frame"
    too_long = await pair.specialist.call(
        {"type": "note", "conversation_id": conv, "body": "x" * 4001}, "note_saved"
    )
    assert too_long["code"] == "bad_frame"
    assert len(await fetch(database_url, "SELECT 1 FROM staff_notes WHERE conversation_id = $1", conv)) == 2

    member_history = await pair.member.call({"type": "history", "conversation_id": conv}, "history")
    assert member_history["messages"] == []
    async with httpx.AsyncClient(base_url=a.http) as http:
        auth = {"Authorization": f"Bearer {token('member', pair.member_id, 'Sam')}"}
        transcript = await http.get(f"/api/conversations/{conv}/messages", headers=auth)
        export = await http.get("/api/me/export", headers=auth)
    assert transcript.status_code == 200 and "qx" not in transcript.text
    assert export.status_code == 200 and "qx" not in export.text
    assert not any("qx" in str(frame) for frame in pair.member.inbox)

    # After the end the specialist still reads the notes (within the access window).
    await pair.member.send({"type": "end", "conversation_id": conv})
    await pair.specialist.expect("conversation_ended")
    after = await pair.specialist.call({"type": "notes", "conversation_id": conv}, "notes")
    assert len(after["notes"]) == 2
    for client in (pair.member, pair.specialist, specialist_b, supervisor, stranger):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc, "qx1", "qx2")


def _bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


# The specialist's wrap-up after an end (PRODUCT.md §8) would answer their claim first.
NO_WRAP_UP = {"PEERCHAT_WRAP_UP_S": "0.01", "PEERCHAT_WRAP_UP_URGENT_S": "0.01"}
SUPERVISOR = _bearer(token("supervisor", "sup-bounds", "Dana"))


async def test_a_block_ends_the_chat_bars_offers_and_claims_across_processes_until_lifted(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory(**NO_WRAP_UP)
    b: LiveService = service_factory(**NO_WRAP_UP)
    pair = await matched(a, member_id="acct-blocked", specialist_id="spec-blocker", tag="anger")
    conv = pair.conversation_id

    # Bad input first: nothing changes.
    by_member = await pair.member.call({"type": "block", "conversation_id": conv, "reason": "x"}, "blocked")
    assert by_member["code"] == "forbidden"
    stranger, _ = await Client.connect(b.ws, token("specialist", "spec-stranger", "Ann"))
    assert (await stranger.call({"type": "block", "conversation_id": conv}, "blocked"))["code"] == "forbidden"
    assert (await stranger.call({"type": "block", "conversation_id": "nope"}, "blocked"))[
        "code"
    ] == "not_found"
    assert await fetch(database_url, "SELECT 1 FROM blocks") == []

    blocked = await pair.specialist.call(
        {"type": "block", "conversation_id": conv, "reason": "abusive language qb1", "end": True}, "blocked"
    )
    assert blocked["type"] == "blocked" and blocked["block_id"] and blocked["until"], blocked
    ended = await pair.member.expect("conversation_ended")
    assert (ended["conversation_id"], ended["by"]) == (conv, "specialist")
    again = await pair.specialist.call({"type": "block", "conversation_id": conv}, "blocked")
    assert again["code"] == "invalid_state"
    [alert] = await fetch(database_url, "SELECT kind FROM alerts WHERE conversation_id = $1", conv)
    assert alert["kind"] == "block"

    async with httpx.AsyncClient(base_url=b.http) as http:
        listed = (await http.get("/api/blocks", headers=SUPERVISOR)).json()["blocks"]
        assert [(x["id"], x["conversation_id"], x["reason"]) for x in listed] == [
            (blocked["block_id"], conv, "abusive language qb1")
        ]
        assert listed[0]["specialist"]["id"] == "spec-blocker" and "acct-blocked" not in str(listed)
        refused = await http.get("/api/blocks", headers=_bearer(token("specialist", "spec-blocker")))
        assert refused.status_code == 403

    # The member asks again for the same tag: the blocker (available, free, tagged) is never
    # offered it; a second specialist on the other process is.
    queued = await pair.member.call({"type": "request", "tags": ["anger"]}, "queued")
    request_id = queued["request_id"]
    [row] = await fetch(database_url, "SELECT avoid FROM requests WHERE id = $1", request_id)
    assert "spec-blocker" in row["avoid"]
    claim = await pair.specialist.call({"type": "claim", "request_id": request_id}, "conversation_started")
    assert (claim["type"], claim["code"]) == ("error", "blocked")

    other = await available_specialist(b, "spec-other", "Ben", tags=["anger"])
    offer = await other.expect("offer", where=lambda m: m["request_id"] == request_id, timeout=20)
    await other.call({"type": "decline", "offer_id": offer["offer_id"]}, "declined")
    assert not [m for m in pair.specialist.inbox if m["type"] == "offer"]

    # A supervisor lifts the block (audited): the blocker may claim by hand again.
    async with httpx.AsyncClient(base_url=a.http) as http:
        lifted = await http.delete(f"/api/blocks/{blocked['block_id']}", headers=SUPERVISOR)
        assert lifted.status_code == 200, lifted.text
        assert (
            await http.delete(f"/api/blocks/{blocked['block_id']}", headers=SUPERVISOR)
        ).status_code == 404
        assert (await http.get("/api/blocks", headers=SUPERVISOR)).json()["blocks"] == []
    [audit] = await fetch(
        database_url, "SELECT target, conversation_id FROM audit_log WHERE action = 'lift_block'"
    )
    assert (audit["target"], audit["conversation_id"]) == (blocked["block_id"], conv)
    claimed = await pair.specialist.call({"type": "claim", "request_id": request_id}, "conversation_started")
    assert claimed["type"] == "conversation_started", claimed
    for client in (pair.member, pair.specialist, stranger, other):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc, "qb1")


async def test_a_report_bars_the_pair_for_good_and_reaches_supervisors(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory(**NO_WRAP_UP)
    b: LiveService = service_factory(**NO_WRAP_UP)
    pair = await matched(a, member_id="acct-reporter", specialist_id="spec-reported", tag="sleep")
    conv = pair.conversation_id

    by_specialist = await pair.specialist.call({"type": "report", "conversation_id": conv}, "reported")
    assert by_specialist["code"] == "forbidden"
    other_member, _ = await Client.connect(b.ws, token("member", "acct-someone", "Lee"))
    assert (await other_member.call({"type": "report", "conversation_id": conv}, "reported"))[
        "code"
    ] == "forbidden"
    assert (await other_member.call({"type": "report", "conversation_id": "nope"}, "reported"))[
        "code"
    ] == "not_found"

    reported = await pair.member.call(
        {"type": "report", "conversation_id": conv, "reason": "rude", "details": "said hurtful things qr1"},
        "reported",
    )
    assert reported["type"] == "reported" and reported["report_id"], reported
    duplicate = await pair.member.call(
        {"type": "report", "conversation_id": conv, "reason": "rude"}, "reported"
    )
    assert duplicate["code"] == "invalid_state"
    [alert] = await fetch(database_url, "SELECT kind FROM alerts WHERE conversation_id = $1", conv)
    assert alert["kind"] == "report"

    async with httpx.AsyncClient(base_url=b.http) as http:
        listed = (await http.get("/api/reports", headers=SUPERVISOR)).json()["reports"]
        assert [(x["id"], x["reason"], x["details"]) for x in listed] == [
            (reported["report_id"], "rude", "said hurtful things qr1")
        ]
        assert (
            await http.get("/api/reports", headers=_bearer(token("member", "acct-reporter")))
        ).status_code == 403

    # After the end the member asks again: the reported specialist (on the other process)
    # may not claim it.
    await pair.member.send({"type": "end", "conversation_id": conv})
    await pair.specialist.expect("conversation_ended")
    queued = await pair.member.call({"type": "request", "tags": ["sleep"]}, "queued")
    [row] = await fetch(database_url, "SELECT avoid FROM requests WHERE id = $1", queued["request_id"])
    assert "spec-reported" in row["avoid"]
    elsewhere, _ = await Client.connect(b.ws, token("specialist", "spec-reported", "Rosa"))
    claim = await elsewhere.call(
        {"type": "claim", "request_id": queued["request_id"]}, "conversation_started"
    )
    assert claim["code"] == "blocked"
    for client in (pair.member, pair.specialist, other_member, elsewhere):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc, "qr1")


async def test_a_suspended_member_cannot_ask_until_lifted_and_the_audit_names_no_member(
    live: LiveService, database_url: str
) -> None:
    member, _ = await Client.connect(live.ws, token("member", "acct-suspended-77", "Kim"))
    path = "/api/members/acct-suspended-77/suspension"
    async with httpx.AsyncClient(base_url=live.http) as http:
        past = await http.put(path, json={"until": "2020-01-01T00:00:00Z", "reason": "x"}, headers=SUPERVISOR)
        assert past.status_code == 422
        for bad in ({"until": "tomorrow"}, {"until": "2099-01-01T00:00:00"}):
            assert (await http.put(path, json=bad, headers=SUPERVISOR)).status_code == 422
        assert (await http.put(path, content=b"{", headers=SUPERVISOR)).status_code == 400
        as_member = _bearer(token("member", "acct-suspended-77"))
        assert (
            await http.put(path, json={"until": "2099-01-01T00:00:00Z"}, headers=as_member)
        ).status_code == 403
        assert await fetch(database_url, "SELECT 1 FROM suspensions") == []

        put = await http.put(
            path, json={"until": "2099-01-01T00:00:00Z", "reason": "threats to staff"}, headers=SUPERVISOR
        )
        assert put.status_code == 200, put.text
        suspension_id = put.json()["id"]
        refused = await member.call({"type": "request", "tags": ["grief"]}, "queued")
        assert (refused["type"], refused["code"]) == ("error", "suspended")
        assert refused["until"].startswith("2099-01-01T00:00:00")
        assert await fetch(database_url, "SELECT 1 FROM requests") == []

        [audit] = await fetch(database_url, "SELECT * FROM audit_log WHERE action = 'suspend'")
        assert audit["target"] == suspension_id
        assert "acct-suspended-77" not in str(dict(audit))

        lifted = await http.delete(path, headers=SUPERVISOR)
        assert lifted.status_code == 204
        assert (await http.delete(path, headers=SUPERVISOR)).status_code == 404
    queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued["type"] == "queued", queued
    await member.close()
