"""The supervisor dashboard in a real browser: editing a specialist's profile through the
form, reading a transcript only with a reason (and the audit row that read writes, checked
in PostgreSQL), and a live urgent-request alert when a member's note holds a risk phrase
(PRODUCT.md §1, §6, §7; docs/web.md "Supervisor")."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import WebSocket, expect

from tests.browser.support import SUPERVISOR_TOKEN, Web, conversation_with, put_profile

pytestmark = pytest.mark.browser

AUTH = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}


async def audit_rows(database_url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT actor_id, actor_role, action, conversation_id, reason FROM audit_log"
            " WHERE action = 'read_transcript' ORDER BY id"
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def test_a_click_on_edit_survives_a_roster_reload_between_press_and_release(web: Web) -> None:
    """The roster reloads whenever loads move (every start, end and hand-over): a reload that
    lands between the press and the release of a click on "Edit", even one that changes the
    row, must not lose the click (it did when every reload rebuilt the rows: the release met
    a new button, the browser fired no click, and the form never opened)."""
    await put_profile(web.live, "spec-press", "Bea", ["grief"])
    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Lee", "sup-press")
    row = boss.locator('[data-testid="specialist-row"][data-specialist-id="spec-press"]')
    await expect(row).to_contain_text("grief")
    edit = row.get_by_test_id("edit-specialist")
    await edit.scroll_into_view_if_needed()
    box = await edit.bounding_box()
    assert box is not None
    await boss.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await boss.mouse.down()
    await put_profile(web.live, "spec-press", "Bea", ["grief", "family"])
    async with boss.expect_response(lambda r: r.url.endswith("/api/specialists")):
        await boss.evaluate("document.querySelector('#specialists-refresh').click()")
    await expect(row).to_contain_text("family, grief")
    await boss.mouse.up()
    await expect(boss.get_by_test_id("specialist-form")).to_be_visible()
    await expect(boss.get_by_test_id("specialist-tags")).to_have_value("family, grief")


async def test_supervisor_edits_a_specialist_profile_through_the_form(web: Web) -> None:
    await put_profile(web.live, "spec-edit", "Ana", ["grief"])
    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Lee", "sup-edit")
    row = boss.locator('[data-testid="specialist-row"][data-specialist-id="spec-edit"]')
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("grief")
    await expect(row).to_contain_text("0 / 3")

    await row.get_by_test_id("edit-specialist").click()
    form = boss.get_by_test_id("specialist-form")
    await expect(form).to_be_visible()
    await expect(boss.get_by_test_id("specialist-id")).to_have_text("spec-edit")
    await expect(boss.get_by_test_id("specialist-name")).to_be_focused()
    await expect(boss.get_by_test_id("specialist-name")).to_have_value("Ana")
    await expect(boss.get_by_test_id("specialist-tags")).to_have_value("grief")
    await expect(boss.get_by_test_id("specialist-languages")).to_have_value("en")
    await expect(boss.get_by_test_id("specialist-max-chats")).to_have_value("3")

    # A bad value is refused in the form, with nothing sent.
    await boss.get_by_test_id("specialist-languages").fill(" , ")
    await boss.get_by_test_id("specialist-save").click()
    await expect(boss.get_by_test_id("specialist-form-error")).to_have_text(
        "At least one language is required."
    )

    await boss.get_by_test_id("specialist-name").fill("Ana María")
    await boss.get_by_test_id("specialist-tags").fill("Trauma, grief,  crisis")
    await boss.get_by_test_id("specialist-languages").fill("es, en")
    await boss.get_by_test_id("specialist-max-chats").fill("5")
    await boss.get_by_test_id("specialist-save").click()
    await expect(form).to_be_hidden()
    await expect(boss.get_by_test_id("notice")).to_have_text("Saved Ana María.")
    await expect(row.get_by_test_id("edit-specialist")).to_be_focused()

    # The table shows the stored (normalised) profile ...
    cells = row.locator("th, td")
    await expect(cells.nth(0)).to_have_text("Ana María")
    await expect(cells.nth(2)).to_have_text("0 / 5")
    await expect(cells.nth(3)).to_have_text("crisis, grief, trauma")
    await expect(cells.nth(4)).to_have_text("en, es")
    await expect(row.get_by_test_id("edit-specialist")).to_have_attribute("aria-label", "Edit Ana María")

    # ... which is what the API now returns.
    async with httpx.AsyncClient(base_url=web.base) as http:
        r = await http.get("/api/specialists", headers=AUTH)
    assert r.status_code == 200
    (profile,) = [p for p in r.json() if p["id"] == "spec-edit"]
    assert {k: profile[k] for k in ("name", "tags", "languages", "max_chats")} == {
        "name": "Ana María",
        "tags": ["crisis", "grief", "trauma"],
        "languages": ["en", "es"],
        "max_chats": 5,
    }

    # And it survives a reload of the dashboard.
    await boss.reload()
    await expect(row.locator("th")).to_have_text("Ana María")


async def test_reading_a_transcript_needs_a_reason_and_is_audited(web: Web, database_url: str) -> None:
    bodies = [
        ("member", "Hi, I relapsed last night."),
        ("specialist", "Thank you for telling me. <b>You are not alone.</b>"),
        ("member", "It helps to hear that."),
    ]
    cid = await conversation_with(web.live, bodies)
    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Lee", "sup-audit")
    # Only the profile edit that set the scene is in the log so far.
    await expect(boss.get_by_test_id("audit-row")).to_have_count(1)
    requests_before = len(web.watched[0].urls)

    # No reason: the browser refuses to submit the form (the field is required) ...
    await boss.get_by_test_id("transcript-conversation-id").fill(cid)
    await boss.get_by_test_id("transcript-submit").click()
    assert await boss.get_by_test_id("transcript-reason").evaluate("(el) => el.validity.valueMissing")
    # ... and a reason of only spaces gets past that but not past the page.
    await boss.get_by_test_id("transcript-reason").fill("   ")
    await boss.get_by_test_id("transcript-submit").click()
    await expect(boss.get_by_test_id("transcript-error")).to_have_text(
        "A reason is required to read a transcript."
    )
    await expect(boss.get_by_test_id("transcript")).to_be_hidden()
    assert not [u for u in web.watched[0].urls[requests_before:] if "/api/conversations/" in u]
    assert await audit_rows(database_url) == []

    # With a reason: the messages show, as text, and the read is audited with that reason.
    reason = "Safety review after a relapse report (ticket 42)"
    await boss.get_by_test_id("transcript-reason").fill(reason)
    await boss.get_by_test_id("transcript-submit").click()
    await expect(boss.get_by_test_id("transcript-error")).to_have_text("")
    title = boss.get_by_test_id("transcript-title")
    await expect(title).to_have_text(f"Conversation {cid}: 3 messages")
    await expect(title).to_be_focused()
    shown = boss.get_by_test_id("transcript-message")
    await expect(shown).to_have_count(3)
    assert [await m.get_attribute("data-seq") for m in await shown.all()] == ["1", "2", "3"]
    await expect(shown.locator(".body")).to_have_text([b for _, b in bodies])
    await expect(shown.locator(".sender")).to_have_text(["Sam (member)", "Ana (specialist)", "Sam (member)"])
    assert await shown.locator("b").count() == 0  # the markup stayed text

    assert await audit_rows(database_url) == [
        {
            "actor_id": "sup-audit",
            "actor_role": "supervisor",
            "action": "read_transcript",
            "conversation_id": cid,
            "reason": reason,
        }
    ]
    # The audit log panel shows it (reloaded after the read, and on Refresh), newest first,
    # above the profile edit that set the scene (audited too, with no reason).
    await expect(boss.get_by_test_id("audit-reason")).to_have_text([reason, ""])
    await boss.get_by_test_id("audit-refresh").click()
    audit = boss.get_by_test_id("audit-row")
    await expect(audit).to_have_count(2)
    await expect(audit.first).to_contain_text(cid)
    await expect(audit.first).to_contain_text("Lee (sup-audit)")
    await expect(audit.first).to_contain_text("read transcript")
    await expect(audit.last).to_contain_text("edit profile")
    await expect(audit.last).to_contain_text("spec-tr")
    await boss.reload()
    await expect(boss.get_by_test_id("audit-reason")).to_have_text([reason, ""])


async def test_urgent_alert_appears_live_and_the_member_gets_no_automatic_reply(
    web: Web, database_url: str
) -> None:
    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Lee", "sup-alert")
    await expect(boss.get_by_test_id("stat-waiting")).to_have_text("0")
    await expect(boss.get_by_test_id("alerts-empty")).to_be_visible()
    await expect(boss.get_by_test_id("alert")).to_have_count(0)

    member = await web.page("member")
    frames: list[dict[str, Any]] = []

    def watch(ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    member.on("websocket", watch)
    await web.login_token(member, "member", "Jo", "member-urgent")
    await member.get_by_test_id("tag-depression").check()
    await member.get_by_test_id("note-input").fill("Everything is too much. I want to die.")
    await member.get_by_test_id("request-button").click()
    await expect(member.get_by_test_id("queue-view")).to_be_visible()
    queued = [f for f in frames if f["type"] == "queued"]
    assert len(queued) == 1
    request_id = queued[0]["request_id"]

    # Live, without a reload: an urgent alert for that request, highlighted.
    alert = boss.get_by_test_id("alert")
    await expect(alert).to_have_count(1)
    await expect(alert).to_have_attribute("data-kind", "urgent_request")
    await expect(alert).to_have_attribute("data-request-id", request_id)
    await expect(alert).to_have_class("alert urgent")
    await expect(alert).to_contain_text("Urgent request · depression · waiting")
    await expect(alert).not_to_contain_text("want to die")  # the note stays out of the alert
    await expect(boss.get_by_test_id("alerts-empty")).to_be_hidden()
    await expect(boss.get_by_test_id("stat-waiting")).to_have_text("1")

    # The member just waits, first in line: no message, no chat, nothing automatic.
    await asyncio.sleep(1.5)
    await expect(member.get_by_test_id("queue-view")).to_be_visible()
    await expect(member.get_by_test_id("queue-position")).to_have_text("1")
    await expect(member.get_by_test_id("chat")).to_have_count(0)
    await expect(member.get_by_test_id("message")).to_have_count(0)
    types = {f["type"] for f in frames}
    assert not types & {"message", "conversation_started", "history"}, types
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM messages") == 0
        assert await conn.fetchval("SELECT count(*) FROM conversations") == 0
        assert await conn.fetchval("SELECT priority FROM requests WHERE id = $1", request_id) == "urgent"
    finally:
        await conn.close()

    # The alert stays until a supervisor acknowledges it (PRODUCT.md §8), from the keyboard.
    ack = alert.get_by_test_id("alert-ack")
    await expect(ack).to_have_attribute("aria-label", "Acknowledge: Urgent request")
    await ack.focus()
    await boss.keyboard.press("Enter")
    await expect(boss.get_by_test_id("alert")).to_have_count(0)
    await expect(boss.get_by_test_id("alerts-empty")).to_be_visible()
    conn = await asyncpg.connect(database_url)
    try:
        acked = await conn.fetchrow("SELECT acked_by_name FROM alerts WHERE request_id = $1", request_id)
        assert acked is not None and acked["acked_by_name"] == "Lee"
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'ack_alert'") == 1
    finally:
        await conn.close()
