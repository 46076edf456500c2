"""Handoffs and boundaries (PRODUCT.md §9), end to end over two real processes: staff
notes reach every staff device and never a member."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.support.client import Client, token
from tests.support.flows import assert_clean_log, matched
from tests.support.servers import LiveService


async def _rows(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    db = await asyncpg.connect(database_url)
    try:
        return await db.fetch(sql, *args)
    finally:
        await db.close()


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
    assert len(await _rows(database_url, "SELECT 1 FROM staff_notes WHERE conversation_id = $1", conv)) == 2

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
