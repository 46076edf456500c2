"""Text people wrote is bidi-isolated on the pages (issue 14): names and aliases sit in
<bdi>, message bodies and notes carry dir="auto", so right-to-left text or a bidi override
in them cannot reorder the words around them. The member page also says, once, that
supervisors may review conversations (PRODUCT.md §8)."""

from __future__ import annotations

import pytest
from playwright.async_api import Locator, Page, expect

from tests.browser.support import Web

pytestmark = pytest.mark.browser

ALIAS = "سارة"  # Arabic: right-to-left letters, which the server keeps (unlike bidi controls)
BODY = "\u202eredro kcab ni"  # RIGHT-TO-LEFT OVERRIDE, never closed
NOTE = "שלום, I would like to talk"
REVIEW = "Supervisors may review conversations to keep people safe."


async def isolated(locator: Locator) -> None:
    """unicode-bidi is isolate (for <bdi> and for dir="auto"), waited for: the page may
    render the element again (a receipt, a re-sort) between finding it and reading its
    style, and a replaced element reads as ''."""
    await expect(locator).to_have_css("unicode-bidi", "isolate")


async def bdi_texts(page: Page, testid: str) -> list[str]:
    return await page.get_by_test_id(testid).locator("bdi").all_text_contents()


async def test_user_text_is_isolated_and_the_review_notice_is_said_once(web: Web) -> None:
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-bidi")
    member = await web.page("member")
    await web.login_token(member, "member", ALIAS, "member-bidi")

    # The review notice: on the start screen, exactly once on the page.
    await expect(member.get_by_test_id("review-notice")).to_have_text(REVIEW)
    await expect(member.get_by_test_id("review-notice")).to_be_visible()
    assert await member.evaluate("(t) => document.body.textContent.split(t).length - 1", REVIEW) == 1
    await expect(member.get_by_test_id("user-name")).to_have_text(f"Signed in as {ALIAS}")
    assert await bdi_texts(member, "user-name") == [ALIAS]

    await member.get_by_test_id("note-input").fill(NOTE)
    await member.get_by_test_id("request-button").click()
    await expect(member.get_by_test_id("queue-view")).to_be_visible()
    await spec.get_by_role("switch").click()
    note = spec.get_by_test_id("offer-note")
    await expect(note).to_have_text(NOTE)
    assert await note.get_attribute("dir") == "auto"
    await isolated(note)
    await spec.get_by_test_id("offer-accept").click()

    # The alias is isolated wherever the specialist's page puts it inside its own words.
    await expect(spec.get_by_test_id("chat-title")).to_have_text(f"Chat with {ALIAS}")
    assert await bdi_texts(spec, "chat-title") == [ALIAS]
    assert await spec.get_by_test_id("chat-tab").locator("bdi").all_text_contents() == [ALIAS]

    member_input = member.get_by_test_id("composer-input")
    await expect(member_input).to_be_focused()
    await member_input.fill(BODY)
    await member_input.press("Enter")
    for page in (member, spec):
        body = page.get_by_test_id("message-body")
        await expect(body).to_have_text([BODY])
        sender = page.get_by_test_id("message-sender")
        assert await body.get_attribute("dir") == "auto"
        assert await sender.get_attribute("dir") == "auto"
        await isolated(body)
        await isolated(sender)
    await expect(spec.get_by_test_id("message-sender")).to_have_text([ALIAS])

    # The typing line and the end notice name the peer in a <bdi> as well.
    await member_input.press_sequentially("typing")
    await expect(spec.get_by_test_id("typing-indicator")).to_have_text(f"{ALIAS} is typing…")
    assert await bdi_texts(spec, "typing-indicator") == [ALIAS]
    await member.get_by_test_id("end-button").click()
    await member.get_by_test_id("end-confirm").click()
    await expect(spec.get_by_test_id("ended-notice")).to_have_text(f"{ALIAS} ended the conversation.")
    assert await bdi_texts(spec, "ended-notice") == [ALIAS]
