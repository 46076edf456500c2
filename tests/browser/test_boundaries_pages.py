"""Blocks and reports in a real browser (PRODUCT.md §9): the supervisor dashboard's blocks
in force and members' reports, shown by alias with their text, "Lift", "Review…" into the
transcript form, and suspending a member by account id until lifted; the member's
"Report this conversation" during it (with a confirmation), still reported after the end;
the specialist console's staff notes and "Block this member"."""

from __future__ import annotations

import asyncpg
import pytest
from playwright.async_api import expect

from tests.browser.support import Web, ask, chat, conversation_id, put_profile
from tests.support.client import Client, token

pytestmark = pytest.mark.browser


async def test_supervisor_sees_blocks_and_reports_lifts_a_block_reviews_and_suspends(
    web: Web, database_url: str
) -> None:
    await put_profile(web.live, "spec-bound", "Rosa", ["grief"])
    spec, _ = await Client.connect(web.live.ws, token("specialist", "spec-bound", "Rosa"))
    await spec.call({"type": "availability", "status": "available"}, "availability")
    convs = []
    for member_id, alias in (("acct-bound-1", "Quinn"), ("acct-bound-2", "Wren")):
        member, _ = await Client.connect(web.live.ws, token("member", member_id, alias))
        queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
        started = await spec.call(
            {"type": "claim", "request_id": queued["request_id"]}, "conversation_started"
        )
        cid = started["conversation"]["id"]
        await member.expect("conversation_started")
        convs.append((member, cid))
    (quinn, first), (wren, second) = convs
    blocked = await spec.call(
        {"type": "block", "conversation_id": first, "reason": "threats <b>not html</b>", "end": True},
        "blocked",
    )
    assert blocked["type"] == "blocked", blocked
    reported = await wren.call(
        {"type": "report", "conversation_id": second, "reason": "rude", "details": "Mocked what I said."},
        "reported",
    )
    assert reported["type"] == "reported", reported

    page = await web.page("supervisor")
    await web.login_token(page, "supervisor", "Dana", "sup-bound")
    panel = page.get_by_test_id("boundaries-panel")
    block = panel.get_by_test_id("block-row")
    await expect(block).to_have_count(1)
    await expect(block).to_contain_text("Rosa")
    await expect(block).to_contain_text("Quinn")
    await expect(block.get_by_test_id("block-reason")).to_have_text("threats <b>not html</b>")
    report = panel.get_by_test_id("report-row")
    await expect(report).to_have_count(1)
    await expect(report).to_contain_text("Wren")
    await expect(report.get_by_test_id("report-details")).to_have_text("Mocked what I said.")
    await expect(panel).not_to_contain_text("acct-bound")
    await web.shoot(page, "supervisor-blocks-and-reports", panel)

    await block.get_by_test_id("lift-block").click()
    await expect(panel.get_by_test_id("block-row")).to_have_count(0)
    await expect(panel.get_by_test_id("blocks-empty")).to_be_visible()
    await expect(panel.get_by_test_id("report-row")).to_have_count(1)

    # "Review…" on a report opens the transcript form for that conversation, reason next.
    await report.get_by_test_id("report-review").click()
    await expect(page.get_by_test_id("transcript-conversation-id")).to_have_value(second)
    await expect(page.get_by_test_id("transcript-reason")).to_be_focused()

    # Suspend Quinn by account id: their request is refused with `suspended` until lifted.
    await panel.get_by_test_id("suspend-member").fill("acct-bound-1")
    await panel.get_by_test_id("suspend-until").fill("2099-01-01T10:00")
    await panel.get_by_test_id("suspend-reason").fill("threats to staff")
    await panel.get_by_test_id("suspend-submit").click()
    await expect(panel.get_by_test_id("suspend-status")).to_contain_text("Suspended until")
    await web.shoot(page, "supervisor-suspend-member", panel.get_by_test_id("suspend-form"))
    refused = await quinn.call({"type": "request", "tags": ["grief"]}, "queued")
    assert (refused["type"], refused["code"]) == ("error", "suspended"), refused
    await panel.get_by_test_id("suspend-lift").click()
    await expect(panel.get_by_test_id("suspend-status")).to_have_text("Suspension lifted.")
    queued = await quinn.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued["type"] == "queued", queued
    db = await asyncpg.connect(database_url)
    try:
        actions = await db.fetch("SELECT action FROM audit_log WHERE action LIKE '%suspen%' ORDER BY id")
    finally:
        await db.close()
    assert [r["action"] for r in actions] == ["suspend", "lift_suspension"]
    for client in (spec, quinn, wren):
        await client.close()
    web.assert_clean()


async def test_a_member_reports_the_conversation_during_it_and_it_stays_reported_after_the_end(
    web: Web, database_url: str
) -> None:
    await put_profile(web.live, "spec-rep", "Rosa", ["grief"])
    spec, _ = await Client.connect(web.live.ws, token("specialist", "spec-rep", "Rosa"))
    await spec.call({"type": "availability", "status": "available"}, "availability")
    member = await web.page("member")
    await web.login_token(member, "member", "Sam", "acct-rep-page")
    await ask(member, "grief")
    offer = await spec.expect("offer", timeout=20)
    await spec.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    cid = await conversation_id(member)

    # During the conversation: the control is under the chat, says the chat goes on, and
    # asks once more before anything is sent.
    report = member.get_by_test_id("report")
    await expect(report).to_be_visible()
    await member.get_by_test_id("report-open").click()
    await expect(member.get_by_test_id("report-during")).to_be_visible()
    await member.get_by_test_id("report-reason").select_option("unsafe")
    await member.get_by_test_id("report-details").fill("They pushed me to talk about things I said no to.")
    await member.get_by_test_id("report-submit").click()
    await expect(member.get_by_test_id("report-confirm")).to_be_visible()
    await member.get_by_test_id("report-no").click()  # backs out: nothing sent
    await expect(member.get_by_test_id("report-confirm")).to_be_hidden()
    await member.get_by_test_id("report-submit").click()
    await web.shoot(member, "member-report-during", report)
    await member.get_by_test_id("report-yes").click()
    await expect(member.get_by_test_id("report-status")).to_contain_text(
        "will not be matched with this peer again"
    )
    await expect(member.get_by_test_id("report-submit")).to_be_disabled()

    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            "SELECT specialist_id, reason, details FROM reports WHERE conversation_id = $1", cid
        )
    finally:
        await db.close()
    assert [(r["specialist_id"], r["reason"], r["details"]) for r in rows] == [
        ("spec-rep", "unsafe", "They pushed me to talk about things I said no to.")
    ]
    # The chat goes on: the member still writes and the specialist still reads.
    await member.get_by_test_id("composer-input").fill("still here")
    await member.get_by_test_id("composer-input").press("Enter")
    got = await spec.expect("message", where=lambda m: m["body"] == "still here", timeout=20)
    assert got["conversation_id"] == cid

    # After the end, the report stays as sent (not a fresh form), and the rating still works.
    await spec.call({"type": "end", "conversation_id": cid}, "conversation_ended")
    await expect(member.get_by_test_id("rating-view")).to_be_visible()
    await expect(member.get_by_test_id("report-during")).to_be_hidden()
    await expect(member.get_by_test_id("report-status")).to_contain_text("will not be matched")
    await expect(member.get_by_test_id("report-submit")).to_be_disabled()
    await member.get_by_test_id("rating-4").check()
    await member.get_by_test_id("rating-submit").click()
    await expect(member.get_by_test_id("thanks-view")).to_be_visible()
    await expect(report).to_be_hidden()
    await spec.close()
    web.assert_clean()


async def test_specialist_console_notes_from_staff_and_block_with_end(web: Web, database_url: str) -> None:
    await put_profile(web.live, "spec-notes-page", "Ana", ["grief"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-notes-page")
    await spec.get_by_role("switch").click()
    member, _ = await Client.connect(web.live.ws, token("member", "acct-notes-page", "Sam"))
    await member.call({"type": "request", "tags": ["grief"]}, "queued")
    await expect(spec.get_by_test_id("offer")).to_have_count(1)
    await spec.get_by_test_id("offer-accept").click()
    started = await member.expect("conversation_started", timeout=20)
    cid = started["conversation"]["id"]

    view = chat(spec, cid)
    panel = view.get_by_test_id("notes-panel")
    await panel.locator("summary").click()
    await panel.get_by_test_id("note-input").fill("Mentions her sister often; ask about the visit.")
    await panel.get_by_test_id("note-save").click()
    await expect(panel.get_by_test_id("staff-note-body")).to_have_text(
        ["Mentions her sister often; ask about the visit."]
    )
    supervisor, _ = await Client.connect(web.live.ws, token("supervisor", "sup-notes-page", "Dana"))
    saved = await supervisor.call(
        {"type": "note", "conversation_id": cid, "body": "Check in tomorrow."}, "note_saved"
    )
    assert saved["type"] == "note_saved", saved
    await expect(panel.get_by_test_id("staff-note")).to_have_count(2)
    await expect(panel.get_by_test_id("staff-note").nth(1)).to_contain_text("Dana (supervisor)")
    await web.shoot(spec, "specialist-notes-and-block", view)

    block = view.get_by_test_id("block-panel")
    await block.locator("summary").click()
    await block.get_by_test_id("block-reason").fill("threats")
    await block.get_by_test_id("block-button").click()
    ended = await member.expect("conversation_ended", timeout=20)
    assert ended["by"] == "specialist"
    await expect(view.get_by_test_id("ended-notice")).to_be_visible()
    db = await asyncpg.connect(database_url)
    try:
        row = await db.fetchrow("SELECT specialist_id, reason FROM blocks WHERE conversation_id = $1", cid)
    finally:
        await db.close()
    assert row is not None and (row["specialist_id"], row["reason"]) == ("spec-notes-page", "threats")
    # The member was told nothing of the notes.
    assert not [f for f in member.inbox if f["type"] in ("note_saved", "notes")]
    assert "sister" not in str(member.inbox)
    for client in (member, supervisor):
        await client.close()
    web.assert_clean()
