"""The specialist console in a real browser: several chats at once with unread counts, an
offer's live countdown, declining an offer, and claiming from the waiting queue by hand
while away (PRODUCT.md §1, §5; docs/web.md "Specialist")."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.browser.support import SUPERVISOR_TOKEN, Web, ask, chat, conversation_id, put_profile, say, tab
from tests.support.servers import wait_until

pytestmark = pytest.mark.browser

COUNTDOWN = re.compile(r"^Expires in (\d+) s$")


async def test_several_chats_at_once_with_unread_counts_and_ending_one(web: Web) -> None:
    # Capacity 3, set by a supervisor over HTTP.
    await put_profile(web.live, "spec-multi", "Ana", ["grief", "anxiety"])
    async with httpx.AsyncClient(base_url=web.base) as http:
        r = await http.get("/api/specialists", headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"})
        assert [p["max_chats"] for p in r.json() if p["id"] == "spec-multi"] == [3]

    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-multi")
    await expect(spec.get_by_test_id("profile-capacity")).to_have_text("0 of 3")
    await spec.get_by_role("switch").click()
    await expect(spec.get_by_test_id("availability-toggle")).to_have_attribute("data-status", "available")

    sam = await web.page("member Sam")
    await web.login_token(sam, "member", "Sam", "member-sam")
    kim = await web.page("member Kim")
    await web.login_token(kim, "member", "Kim", "member-kim")

    # Two requests, two offers, both accepted.
    await ask(sam, "grief")
    await expect(spec.get_by_test_id("offer")).to_have_count(1)
    await spec.get_by_test_id("offer-accept").click()
    sam_cid = await conversation_id(sam)
    await ask(kim, "anxiety")
    await expect(spec.get_by_test_id("offer")).to_have_count(1)
    await expect(spec.get_by_test_id("offer-topics")).to_have_text("anxiety · EN")
    await spec.get_by_test_id("offer-accept").click()
    kim_cid = await conversation_id(kim)
    assert sam_cid != kim_cid

    await expect(spec.get_by_test_id("chat-tab")).to_have_count(2)
    await expect(spec.get_by_test_id("offer")).to_have_count(0)
    await expect(spec.get_by_test_id("profile-capacity")).to_have_text("2 of 3")
    # The first chat stays in front; the second waits in its tab.
    await expect(tab(spec, sam_cid)).to_have_attribute("aria-current", "true")
    await expect(tab(spec, kim_cid)).not_to_have_attribute("aria-current", "true")
    await expect(chat(spec, sam_cid)).to_be_visible()
    await expect(chat(spec, kim_cid)).to_be_hidden()
    kim_badge = tab(spec, kim_cid).get_by_test_id("unread-count")
    sam_badge = tab(spec, sam_cid).get_by_test_id("unread-count")
    await expect(kim_badge).to_be_hidden()

    # Kim writes into the background chat: her tab counts them.
    await say(kim, "Are you there?")
    await expect(kim_badge).to_have_text("1")
    await expect(kim_badge).to_be_visible()
    await say(kim, "My chest is tight again.")
    await expect(kim_badge).to_have_text("2")
    await expect(tab(spec, kim_cid)).to_have_attribute("aria-label", "Kim, 2 unread")
    await expect(spec).to_have_title(re.compile(r"^\(2 unread\) "))
    # Sam writes into the chat in front: no count.
    await say(sam, "Thanks for being here.")
    await expect(chat(spec, sam_cid).get_by_test_id("message")).to_have_count(1)
    await expect(sam_badge).to_be_hidden()
    # Kim's messages were not "read" while her chat was hidden.
    await expect(kim.get_by_test_id("message").nth(1)).to_have_attribute("data-state", "sent")

    # Switching to Kim's tab clears her count, shows her messages, and marks them read.
    await tab(spec, kim_cid).click()
    await expect(tab(spec, kim_cid)).to_have_attribute("aria-current", "true")
    await expect(chat(spec, kim_cid)).to_be_visible()
    await expect(chat(spec, sam_cid)).to_be_hidden()
    await expect(kim_badge).to_be_hidden()
    await expect(kim_badge).to_have_text("0")
    await expect(spec).not_to_have_title(re.compile("unread"))
    await expect(chat(spec, kim_cid).get_by_test_id("composer-input")).to_be_focused()
    assert await chat(spec, kim_cid).get_by_test_id("message-body").all_text_contents() == [
        "Are you there?",
        "My chest is tight again.",
    ]
    await expect(kim.get_by_test_id("message").nth(1)).to_have_attribute("data-state", "read")
    # Now Sam's chat is the background one.
    await say(sam, "Still here?")
    await expect(sam_badge).to_have_text("1")

    # The specialist answers Kim, then ends Kim's chat.
    await say(spec, "I'm here, Kim. Let's breathe together.", chat(spec, kim_cid))
    await expect(kim.get_by_test_id("message")).to_have_count(3)
    await chat(spec, kim_cid).get_by_test_id("end-button").click()
    await chat(spec, kim_cid).get_by_test_id("end-confirm").click()
    await expect(chat(spec, kim_cid).get_by_test_id("ended-notice")).to_have_text(
        "You ended the conversation."
    )
    await expect(kim.get_by_test_id("rating-view")).to_be_visible()
    await expect(kim.get_by_test_id("ended-notice")).to_have_text("Ana ended the conversation.")
    await expect(tab(spec, kim_cid).get_by_test_id("chat-tab-state")).to_have_text("(ended)")
    await expect(spec.get_by_test_id("profile-capacity")).to_have_text("1 of 3")

    # Sam's chat keeps working, both ways.
    await tab(spec, sam_cid).click()
    await expect(sam_badge).to_be_hidden()
    await say(spec, "Still here, Sam.", chat(spec, sam_cid))
    await expect(sam.get_by_test_id("message")).to_have_count(3)
    await expect(sam.get_by_test_id("message-body").nth(2)).to_have_text("Still here, Sam.")
    await say(sam, "Good.")
    await expect(chat(spec, sam_cid).get_by_test_id("message")).to_have_count(4)
    await expect(sam.get_by_test_id("ended-notice")).to_be_hidden()
    await expect(sam.get_by_test_id("composer")).to_be_visible()

    # Closing the ended chat removes its tab and leaves Sam's.
    await tab(spec, kim_cid).click()
    await chat(spec, kim_cid).get_by_test_id("close-chat").click()
    await expect(spec.get_by_test_id("chat-tab")).to_have_count(1)
    await expect(tab(spec, sam_cid)).to_have_attribute("aria-current", "true")


async def test_offer_countdown_decline_and_claim_by_hand_while_away(web: Web) -> None:
    await put_profile(web.live, "spec-pick", "Ana", ["grief"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-pick")
    await spec.get_by_role("switch").click()
    await expect(spec.get_by_test_id("availability-toggle")).to_have_attribute("data-status", "available")

    member = await web.page("member")
    await web.login_token(member, "member", "Ray", "member-ray")
    await ask(member, "grief", "Rough week.")

    # The offer's countdown is visible and goes down, once a second.
    offer = spec.get_by_test_id("offer")
    await expect(offer).to_have_count(1)
    countdown = offer.get_by_test_id("offer-countdown")
    await expect(countdown).to_be_visible()
    await expect(countdown).to_have_attribute("role", "timer")
    await expect(countdown).to_have_text(COUNTDOWN)
    first = int(COUNTDOWN.match(await countdown.inner_text()).group(1))  # type: ignore[union-attr]
    assert 25 <= first <= 30, first  # PEERCHAT_OFFER_TIMEOUT_S defaults to 30
    # What a person watching it sees: one step down each second.
    await spec.evaluate(
        """() => {
            const el = document.querySelector('[data-testid="offer-countdown"]');
            const seen = (window.__ticks = []);
            new MutationObserver(() => {
                // Each tick rewrites the text; keep only what changed, and when.
                const last = seen[seen.length - 1];
                if (!last || last[1] !== el.textContent) seen.push([performance.now(), el.textContent]);
            }).observe(el, { childList: true, characterData: true, subtree: true });
        }"""
    )
    await wait_until(lambda: spec.evaluate("() => window.__ticks.length >= 3"), timeout=5)
    seen: list[list[Any]] = await spec.evaluate("() => window.__ticks")
    values = [int(COUNTDOWN.match(text).group(1)) for _, text in seen[:3]]  # type: ignore[union-attr]
    assert values == [values[0], values[0] - 1, values[0] - 2] and values[0] <= first, (first, seen)
    gaps = [b[0] - a[0] for a, b in pairwise(seen[:3])]
    assert all(500 < g < 2000 for g in gaps), gaps  # a 1 s clock, with slack for a busy CI
    await expect(spec.get_by_test_id("offer-count")).to_have_text("1")
    await expect(spec).to_have_title(re.compile(r"^\(1 offer\) "))

    # Declining removes the offer; the member keeps waiting and is not offered again.
    await spec.get_by_role("button", name="Decline offer: grief · EN").click()
    await expect(offer).to_have_count(0)
    await expect(spec.get_by_test_id("offers-empty")).to_be_visible()
    await expect(spec.get_by_test_id("offer-count")).to_be_hidden()
    await expect(spec.get_by_test_id("notice")).to_have_text("Offer declined.")
    await expect(spec).not_to_have_title(re.compile("offer"))
    await expect(member.get_by_test_id("queue-view")).to_be_visible()
    await expect(member.get_by_test_id("queue-position")).to_have_text("1")

    # Away from offers, the specialist still claims the request from the queue by hand.
    await spec.get_by_role("switch").click()
    await expect(spec.get_by_test_id("availability-toggle")).to_have_attribute("data-status", "away")
    item = spec.get_by_test_id("queue-item")
    await expect(item).to_have_count(1)
    await expect(item.get_by_test_id("queue-topics")).to_have_text("grief · EN")
    await expect(item.get_by_test_id("queue-waited")).to_have_text(re.compile(r"^waiting \d+ s$"))
    await item.get_by_test_id("claim-button").click()

    await expect(spec.get_by_test_id("chat-tab")).to_have_count(1)
    await expect(spec.get_by_test_id("chat-title")).to_have_text("Chat with Ray")
    await expect(spec.get_by_test_id("queue-item")).to_have_count(0)
    await expect(spec.get_by_test_id("queue-empty")).to_be_visible()
    await expect(spec.get_by_test_id("offer")).to_have_count(0)
    await expect(spec.get_by_test_id("availability-toggle")).to_have_attribute("data-status", "away")
    await expect(member.get_by_test_id("chat-title")).to_have_text("Chat with Ana")
    await say(member, "Hi, thanks.")
    await expect(spec.get_by_test_id("message-body")).to_have_text(["Hi, thanks."])
    await expect(spec.get_by_test_id("profile-capacity")).to_have_text("1 of 3")
