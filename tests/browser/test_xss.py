"""Message bodies, names and notes are text, never HTML: an XSS corpus sent both ways shows
as the literal characters on both pages, runs nothing, adds no element, and a 3,000-character
word wraps instead of pushing a phone-sized page sideways."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser.support import PHONE, Web, assert_no_horizontal_overflow

pytestmark = pytest.mark.browser

LONG_WORD = "W" * 3000  # wide letters, no break opportunity anywhere
CORPUS = [
    "<img src=x onerror=window.__xss=1>",
    "<script>window.__xss=1</script>",
    '<a href="javascript:window.__xss=1">x</a>',
    "<svg onload=window.__xss=1>",
    '<svg><script href="data:text/javascript,window.__xss=1"/></svg>',
    '"><iframe srcdoc="<script>parent.__xss=1</script>">',
    "{{constructor.constructor('window.__xss=1')()}}",
    LONG_WORD,
]
ALIAS = '<img src=y onerror="window.__xss=2">'
NOTE = "<b>bold?</b> <script>window.__xss=3</script>"


async def assert_inert(page: Page, bodies: list[str]) -> None:
    """The messages list holds exactly these bodies, as text, and nothing ran."""
    shown = page.get_by_test_id("message-body")
    await expect(shown).to_have_count(len(bodies))
    assert await shown.evaluate_all("els => els.map((e) => e.textContent)") == bodies
    messages = page.get_by_test_id("messages")
    # Each body is a <p> holding one text node: no element was parsed out of any of them.
    assert await messages.locator("[data-testid=message-body] *").count() == 0
    assert await messages.locator("img, script, svg, iframe, a, object, embed").count() == 0
    assert await page.evaluate("() => window.__xss") is None
    assert await page.evaluate("() => document.querySelectorAll('img, iframe, object, embed').length") == 0


async def test_xss_corpus_is_literal_text_on_both_sides_and_long_words_wrap(web: Web) -> None:
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-xss")
    member = await web.page("member", PHONE)
    await web.login_token(member, "member", ALIAS, "member-xss")

    await member.get_by_label("Anything you would like your peer to know first?").fill(NOTE)
    await member.get_by_role("button", name="Ask for a peer").click()
    await expect(member.get_by_test_id("queue-view")).to_be_visible()
    await spec.get_by_role("switch").click()
    offer = spec.get_by_test_id("offer")
    await expect(offer.get_by_test_id("offer-note")).to_have_text(NOTE)
    assert await offer.locator("b, script").count() == 0
    await offer.get_by_test_id("offer-accept").click()

    # The member's chosen name is an HTML string too: the specialist sees it as text.
    await expect(spec.get_by_test_id("chat-title")).to_have_text(f"Chat with {ALIAS}")
    await expect(spec.get_by_test_id("chat-tab")).to_contain_text(ALIAS)

    sent: list[str] = []
    for i, body in enumerate(CORPUS):
        # Alternate sides, so each page renders the corpus both as its own and as the peer's.
        page, other = (member, spec) if i % 2 == 0 else (spec, member)
        composer = page.get_by_test_id("composer-input")
        await composer.fill(body)
        await composer.press("Enter")
        sent.append(body)
        await expect(other.get_by_test_id("message-body")).to_have_count(len(sent))
        await expect(page.get_by_test_id("message").last).not_to_have_attribute("data-state", "pending")

    await assert_inert(member, sent)
    await assert_inert(spec, sent)
    senders = await spec.get_by_test_id("message-sender").all_text_contents()
    assert senders[0] == ALIAS and senders[1] == "You"

    # The long word wraps inside its bubble at 375 px: neither the page nor the list scrolls
    # sideways, and the bubble stays inside the viewport.
    await assert_no_horizontal_overflow(member, "member chat with a 3,000-character word")
    wide: dict[str, float] = await member.get_by_test_id("messages").evaluate(
        """(list) => {
            const bubble = [...list.querySelectorAll('[data-testid=message]')].at(-1);
            return { scroll: list.scrollWidth, client: list.clientWidth,
                     right: bubble.getBoundingClientRect().right, viewport: window.innerWidth };
        }"""
    )
    assert wide["scroll"] <= wide["client"], wide
    assert wide["right"] <= wide["viewport"], wide
    await assert_no_horizontal_overflow(spec, "specialist chat with a 3,000-character word")
