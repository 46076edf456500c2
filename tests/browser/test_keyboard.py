"""Keyboard only: a member opens and closes the crisis panel, asks for a peer, chats, ends
and rates with Tab, Shift+Tab, Space, Enter, Escape and the arrow keys; focus lands where
docs/web.md says. Every control on every page has an accessible name."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.support import Web, assert_controls_named, tab_to

pytestmark = pytest.mark.browser


async def test_member_asks_chats_ends_and_rates_with_the_keyboard_only(web: Web) -> None:
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-kb")
    member = await web.page("member")
    await web.login_token(member, "member", "Kim", "member-kb")
    kb = member.keyboard

    # The first stop is the skip link; then "Need help now?" opens the crisis panel.
    await kb.press("Tab")
    await expect(member.get_by_role("link", name="Skip to content")).to_be_focused()
    await tab_to(member, "crisis-button")
    await kb.press("Enter")
    await expect(member.get_by_test_id("crisis-panel")).to_be_visible()
    await expect(member.get_by_test_id("crisis-panel")).to_be_focused()
    await expect(member.get_by_test_id("crisis-call").first).to_have_attribute("href", "tel:988")
    await kb.press("Escape")
    await expect(member.get_by_test_id("crisis-panel")).to_be_hidden()
    await expect(member.get_by_test_id("crisis-button")).to_be_focused()

    # Topics with Space, the note by typing, the request with Enter.
    await tab_to(member, "tag-grief")
    await kb.press("Space")
    await expect(member.get_by_test_id("tag-grief")).to_be_checked()
    await tab_to(member, "language-select")
    await tab_to(member, "note-input")
    await kb.type("Typed without a mouse.")
    await tab_to(member, "request-button")
    controls = await assert_controls_named(member)
    assert ("checkbox", "Grief and loss") in controls
    assert ("combobox", "Language") in controls
    assert ("button", "Ask for a peer") in controls
    await kb.press("Enter")
    await expect(member.get_by_test_id("queue-view")).to_be_visible()
    await expect(member.get_by_role("heading", name="Waiting for a peer")).to_be_focused()
    await assert_controls_named(member)

    # The specialist takes it from the queue (the mouse is fine on that side).
    item = spec.get_by_test_id("queue-item")
    await expect(item).to_have_count(1)
    await expect(item.get_by_test_id("queue-topics")).to_have_text("grief · EN")
    await spec.get_by_role("button", name="Claim request: grief · EN").click()

    # Focus moves into the composer; Enter sends, Shift+Enter starts a new line.
    await expect(member.get_by_test_id("composer-input")).to_be_focused()
    await kb.type("Hello from the keyboard")
    await kb.press("Enter")
    await kb.type("line one")
    await kb.press("Shift+Enter")
    await kb.type("line two")
    await kb.press("Enter")
    bodies = spec.get_by_test_id("message-body")
    await expect(bodies).to_have_count(2)
    assert await bodies.all_text_contents() == ["Hello from the keyboard", "line one\nline two"]
    controls = await assert_controls_named(member)
    assert ("textbox", "Message to Ana") in controls
    assert ("button", "End chat") in controls

    # End: the confirmation takes focus on "Keep chatting"; Escape backs out; then end it.
    await tab_to(member, "end-button", back=True)
    await kb.press("Enter")
    await expect(member.get_by_test_id("end-cancel")).to_be_focused()
    await kb.press("Escape")
    await expect(member.get_by_test_id("end-button")).to_be_focused()
    await kb.press("Enter")
    await kb.press("Shift+Tab")
    await expect(member.get_by_test_id("end-confirm")).to_be_focused()
    await kb.press("Enter")

    # Rate with the arrow keys, send with Enter.
    await expect(member.get_by_role("heading", name="How was this conversation?")).to_be_focused()
    await expect(spec.get_by_test_id("ended-notice")).to_have_text("Kim ended the conversation.")
    await kb.press("Tab")
    await expect(member.get_by_test_id("rating-1")).to_be_focused()
    for _ in range(4):
        await kb.press("ArrowRight")
    await expect(member.get_by_test_id("rating-5")).to_be_checked()
    await assert_controls_named(member)
    await tab_to(member, "rating-submit")
    await kb.press("Enter")
    await expect(member.get_by_test_id("thanks-view")).to_be_visible()
    await expect(member.get_by_role("heading", name="Thank you")).to_be_focused()
    await tab_to(member, "new-request")
    await kb.press("Enter")
    await expect(member.get_by_test_id("start-view")).to_be_visible()

    # The specialist's and the supervisor's pages: every control named as well.
    spec_controls = await assert_controls_named(spec)
    assert ("switch", "Status: Away") in spec_controls  # claimed by hand while away
    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Lee", "sup-kb")
    await expect(boss.get_by_test_id("specialist-row")).to_have_count(1)
    boss_controls = await assert_controls_named(boss)
    assert ("button", "Read transcript") in boss_controls
    await boss.get_by_test_id("edit-specialist").focus()
    await boss.keyboard.press("Enter")
    await expect(boss.get_by_test_id("specialist-form")).to_be_visible()
    await assert_controls_named(boss)
    await boss.keyboard.press("Escape")
    await expect(boss.get_by_test_id("specialist-form")).to_be_hidden()
    await expect(boss.get_by_test_id("edit-specialist")).to_be_focused()
