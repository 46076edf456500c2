"""Keyboard only on the staff pages (issue 18): a specialist goes available, accepts an
offer, chats and ends the chat; a supervisor sets a specialist away, opens and closes the
profile form, filters the feedback and the audit log, exports it and reads a transcript,
with Tab, Shift+Tab, Space, Enter, Escape and the arrow keys. And what is announced: new
messages land in the chat's live log, alerts in the supervisor's live alert list, offers
and new chats in the specialist's assertive announcer."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.support import Web, conversation_with, focused, put_profile, tab_to
from tests.support.client import Client, token

pytestmark = pytest.mark.browser


async def test_specialist_takes_an_offer_chats_and_ends_with_the_keyboard_only(web: Web) -> None:
    await put_profile(web.live, "spec-kb", "Ana", ["grief"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-kb")
    kb = spec.keyboard

    await kb.press("Tab")
    await expect(spec.get_by_role("link", name="Skip to content")).to_be_focused()
    await tab_to(spec, "availability-toggle")
    await kb.press("Space")
    await expect(spec.get_by_test_id("availability-toggle")).to_have_attribute("data-status", "available")

    member, _ = await Client.connect(web.live.ws, token("member", "acct-kb", "Sam"))
    await member.call({"type": "request", "tags": ["grief"]}, "queued")
    await expect(spec.get_by_test_id("offer")).to_have_count(1)
    # The offer is announced (assertive: it expires).
    await expect(spec.get_by_test_id("announcer")).to_contain_text("New offer: grief", timeout=15_000)
    await tab_to(spec, "offer-accept")
    await kb.press("Enter")
    await member.expect("conversation_started")
    await expect(spec.get_by_test_id("announcer")).to_have_text("New chat with Sam.")
    # Focus lands in the composer; Enter sends.
    await expect(spec.get_by_test_id("composer-input")).to_be_focused()
    await kb.type("Hello Sam, I am here.")
    await kb.press("Enter")
    got = await member.expect("message", where=lambda f: f["body"] == "Hello Sam, I am here.")
    # A new message from the member is announced: it lands in the polite live log.
    log = spec.get_by_test_id("messages")
    await expect(log).to_have_attribute("role", "log")
    await expect(log).to_have_attribute("aria-live", "polite")
    await member.send(
        {
            "type": "send",
            "conversation_id": got["conversation_id"],
            "client_msg_id": "kb-1",
            "body": "Thank you.",
        }
    )
    await expect(log.get_by_test_id("message-body").last).to_have_text("Thank you.")
    await expect(log).to_contain_text("Thank you.")

    # End the chat: the confirmation takes focus, Escape backs out, then "Yes, end it".
    await tab_to(spec, "end-button")
    await kb.press("Enter")
    await expect(spec.get_by_test_id("end-cancel")).to_be_focused()
    await kb.press("Escape")
    await expect(spec.get_by_test_id("end-button")).to_be_focused()
    await kb.press("Enter")
    await tab_to(spec, "end-confirm", back=True)
    await kb.press("Enter")
    await member.expect("conversation_ended")
    await expect(spec.get_by_test_id("ended-notice")).to_contain_text("You ended the conversation")
    await member.close()


async def test_supervisor_dashboard_with_the_keyboard_only(web: Web) -> None:
    await put_profile(web.live, "spec-on", "Ana", ["family"])
    on_shift, _ = await Client.connect(web.live.ws, token("specialist", "spec-on", "Ana"))
    await on_shift.call({"type": "availability", "status": "available"}, "availability")
    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Lee", "sup-kb")
    kb = boss.keyboard
    row = boss.locator('[data-testid="specialist-row"][data-specialist-id="spec-on"]')
    await expect(row).to_have_attribute("data-status", "available")

    await kb.press("Tab")
    await expect(boss.get_by_role("link", name="Skip to content")).to_be_focused()
    # Set away: Enter on the row's button; focus stays in the row (on Edit, as the button goes).
    await tab_to(boss, "set-away")
    await kb.press("Enter")
    await on_shift.expect("availability", where=lambda f: f["status"] == "away", timeout=15)
    await expect(row).to_have_attribute("data-status", "away")
    await expect(row.get_by_test_id("edit-specialist")).to_be_focused()
    # The edit form: Enter opens it (focus on the name), Escape closes it (focus back).
    await kb.press("Enter")
    await expect(boss.get_by_test_id("specialist-name")).to_be_focused()
    await kb.press("Escape")
    await expect(boss.get_by_test_id("specialist-form")).to_be_hidden()
    await expect(row.get_by_test_id("edit-specialist")).to_be_focused()

    # Feedback: the period with the arrow keys, Enter on Show.
    await tab_to(boss, "feedback-weeks")
    await kb.press("ArrowDown")
    await expect(boss.get_by_test_id("feedback-weeks")).to_have_value("12")
    await tab_to(boss, "feedback-show")
    await kb.press("Enter")
    await expect(boss.get_by_test_id("feedback-empty")).to_be_visible()

    # The audit log: pick "set away" with the arrow keys, Enter on Filter.
    await tab_to(boss, "audit-action")
    for _ in range(3):
        await kb.press("ArrowDown")
    await expect(boss.get_by_test_id("audit-action")).to_have_value("set_away")
    await tab_to(boss, "audit-apply")
    await kb.press("Enter")
    rows = boss.get_by_test_id("audit-row")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("spec-on")
    await kb.press("Tab")
    assert await focused(boss) == "audit-export"
    async with boss.expect_download() as info:
        await kb.press("Enter")
    assert (await info.value).suggested_filename == "audit.csv"

    # A transcript read, by keyboard: id, reason, Enter; focus goes to its heading.
    cid = await conversation_with(web.live, [("member", "Hello?"), ("specialist", "Hi, I am here.")])
    await tab_to(boss, "transcript-conversation-id", back=True)
    await kb.type(cid)
    await kb.press("Tab")
    assert await focused(boss) == "transcript-reason"
    await kb.type("Checking a report")
    await kb.press("Tab")
    await kb.press("Enter")
    await expect(boss.get_by_test_id("transcript-title")).to_be_focused()
    await expect(boss.get_by_test_id("transcript-message")).to_have_count(2)
    await on_shift.close()


async def test_new_alerts_are_announced_on_the_supervisor_page(web: Web) -> None:
    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Lee", "sup-live")
    alerts = boss.get_by_test_id("alerts")
    await expect(alerts).to_have_attribute("aria-live", "polite")
    await expect(alerts).to_have_attribute("aria-relevant", "additions")
    await expect(boss.get_by_test_id("alert")).to_have_count(0)
    member, _ = await Client.connect(web.live.ws, token("member", "acct-live", "Sam"))
    await member.call(
        {"type": "request", "tags": ["crisis"], "note": "I want to kill myself tonight"}, "queued"
    )
    # The new alert's text is inside the live region (so a screen reader says it).
    await expect(alerts.get_by_test_id("alert")).to_have_count(1, timeout=20_000)
    await expect(alerts.get_by_test_id("alert")).to_contain_text("Urgent request")
    await expect(alerts.get_by_test_id("alert")).to_contain_text("crisis")
    assert "kill myself" not in await alerts.inner_text()
    await member.close()
