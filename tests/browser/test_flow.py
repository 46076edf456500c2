"""The whole conversation as three people see it, in three browser contexts against a real
service (PostgreSQL, Redis): a member asks, a specialist gets the offer and accepts, both
chat, the member ends and rates; a supervisor watches the load change live. Every page on
the way is captured at desktop and phone width into docs/screenshots/."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.support import Web, feedback_rows, put_profile, recorded, start_recording
from tests.support.servers import wait_until

pytestmark = pytest.mark.browser


async def test_request_offer_accept_chat_end_rate_while_a_supervisor_watches(
    web: Web, database_url: str
) -> None:
    # The supervisor signs in through the real form and starts watching.
    boss = await web.page("supervisor")
    await web.login_ui(boss, "supervisor", "Lee", "sup-lee")
    await expect(boss.get_by_test_id("stat-waiting")).to_have_text("0")
    await expect(boss.get_by_test_id("stat-active")).to_have_text("0")
    await start_recording(boss, ["stat-waiting", "stat-active"])

    # The specialist (profile set by a supervisor over HTTP) signs in and stays away for now,
    # so the request waits long enough for the supervisor to see it.
    await put_profile(web.live, "spec-ana", "Ana", ["alcohol", "grief"])
    spec = await web.page("specialist")
    await web.login_ui(spec, "specialist", "Ana", "spec-ana")
    await expect(spec.get_by_test_id("profile-tags")).to_have_text("alcohol, grief")
    await expect(spec.get_by_test_id("availability-toggle")).to_have_attribute("data-status", "away")

    # The member signs in through the form (captured as the login page) and asks.
    member = await web.page("member")
    await web.login_ui(member, "member", "Sam", "member-sam", shot="login")
    assert member.url == f"{web.base}/member"
    await member.get_by_test_id("tag-alcohol").check()
    await member.get_by_test_id("tag-grief").check()
    await member.get_by_label("Anything you would like your peer to know first?").fill(
        "Two months sober; my dad died last week."
    )
    await web.shoot(member, "member-start")
    await member.get_by_role("button", name="Ask for a peer").click()

    await expect(member.get_by_test_id("queue-view")).to_be_visible()
    await expect(member.get_by_test_id("queue-position")).to_have_text("1")
    await expect(member.get_by_test_id("queue-topics")).to_have_text("Topics: Alcohol, Grief and loss")
    await expect(boss.get_by_test_id("stat-waiting")).to_have_text("1")
    await expect(boss.get_by_test_id("by-tag-row")).to_have_count(2)
    await expect(spec.get_by_test_id("queue-item")).to_have_count(1)
    await web.shoot(member, "member-waiting")
    await web.shoot(boss, "supervisor")

    # Available: the offer arrives with its note (as text) and a countdown.
    await spec.get_by_role("switch").click()
    await expect(spec.get_by_test_id("availability-toggle")).to_have_attribute("aria-checked", "true")
    offer = spec.get_by_test_id("offer")
    await expect(offer).to_have_count(1)
    await expect(offer.get_by_test_id("offer-topics")).to_have_text("alcohol, grief · EN")
    await expect(offer.get_by_test_id("offer-note")).to_have_text("Two months sober; my dad died last week.")
    await expect(offer.get_by_test_id("offer-countdown")).to_have_text(re.compile(r"^Expires in \d+ s$"))
    await web.shoot(spec, "specialist-offer")
    await spec.get_by_role("button", name="Accept offer: alcohol, grief · EN").click()

    # Both sides are in the chat.
    await expect(member.get_by_test_id("chat-title")).to_have_text("Chat with Ana")
    await expect(spec.get_by_test_id("chat-tab")).to_have_count(1)
    await expect(spec.get_by_test_id("chat-title")).to_have_text("Chat with Sam")
    await expect(spec.get_by_test_id("offer")).to_have_count(0)
    await expect(boss.get_by_test_id("stat-waiting")).to_have_text("0")
    await expect(boss.get_by_test_id("stat-active")).to_have_text("1")

    # Member → specialist, with the typing indicator on the way.
    m_input = member.get_by_test_id("composer-input")
    await expect(m_input).to_be_focused()
    await m_input.fill("Hi Ana, thanks for taking this.")
    await expect(spec.get_by_test_id("typing-indicator")).to_have_text("Sam is typing…")
    await m_input.press("Enter")
    s_msgs = spec.get_by_test_id("message")
    await expect(s_msgs).to_have_count(1)
    await expect(s_msgs.first).to_have_attribute("data-sender-role", "peer")
    await expect(s_msgs.first.get_by_test_id("message-body")).to_have_text("Hi Ana, thanks for taking this.")
    await expect(spec.get_by_test_id("typing-indicator")).to_be_hidden()
    # The specialist's page is showing it, so the member's receipt turns to Read.
    own = member.get_by_test_id("message").first
    await expect(own).to_have_attribute("data-state", "read")
    await expect(own.get_by_test_id("receipt")).to_have_text("Read")

    # Specialist → member.
    s_input = spec.get_by_test_id("composer-input")
    await s_input.fill("Hi Sam. I'm glad you reached out. How are you holding up today?")
    await spec.get_by_role("button", name="Send").click()
    m_msgs = member.get_by_test_id("message")
    await expect(m_msgs).to_have_count(2)
    await expect(m_msgs.nth(1)).to_have_attribute("data-sender-role", "peer")
    await expect(m_msgs.nth(1).get_by_test_id("message-sender")).to_have_text("Ana")
    await expect(m_msgs.nth(1).get_by_test_id("message-body")).to_have_text(
        "Hi Sam. I'm glad you reached out. How are you holding up today?"
    )
    await m_input.fill("Some days are harder than others. Today is one of them.")
    await m_input.press("Enter")
    await expect(s_msgs).to_have_count(3)
    await expect(m_msgs.nth(2)).to_have_attribute("data-seq", "3")
    await expect(spec.get_by_test_id("profile-capacity")).to_have_text("1 of 3")
    # The member's page shows the reply, so the specialist's receipt turns to Read too.
    await expect(s_msgs.nth(1)).to_have_attribute("data-state", "read")
    await expect(m_msgs.nth(2)).to_have_attribute("data-state", "read")
    await web.shoot(member, "member-chat")
    await web.shoot(spec, "specialist-chats", show=spec.get_by_test_id("chats-panel"))

    # The member ends the chat (with confirmation); both sides see it end.
    await member.get_by_role("button", name="End chat").click()
    await expect(member.get_by_role("button", name="Keep chatting")).to_be_focused()
    await member.get_by_role("button", name="Yes, end it").click()
    await expect(member.get_by_test_id("rating-view")).to_be_visible()
    await expect(member.get_by_test_id("ended-notice")).to_have_text("You ended the conversation.")
    await expect(spec.get_by_test_id("ended-notice")).to_have_text("Sam ended the conversation.")
    await expect(spec.get_by_test_id("close-chat")).to_be_visible()
    await expect(spec.get_by_test_id("composer")).to_be_hidden()
    await expect(boss.get_by_test_id("stat-active")).to_have_text("0")
    conversation_id = await member.get_by_test_id("chat").get_attribute("data-conversation-id")
    assert conversation_id

    # The rating.
    await member.get_by_label("4", exact=True).check()
    await member.get_by_label("Anything else you want to tell us?").fill("It helped to talk.")
    await web.shoot(member, "member-rating")
    await member.get_by_role("button", name="Send feedback").click()
    await expect(member.get_by_test_id("thanks-view")).to_be_visible()
    await expect(member.get_by_test_id("thanks-text")).to_have_text(
        "Thank you for your feedback. Take care of yourself."
    )
    await expect(member.get_by_test_id("notice")).to_have_text("")  # "Ana has joined" is gone
    await web.shoot(member, "member-thanks")

    rows = await feedback_rows(database_url)
    assert rows == [
        {
            "conversation_id": conversation_id,
            "member_id": "member-sam",
            "rating": 4,
            "comment": "It helped to talk.",
        }
    ]

    # What the supervisor saw, live, in order.
    await wait_until(lambda: recorded(boss, "stat-active"), timeout=5)
    assert await recorded(boss, "stat-waiting") == ["0", "1", "0"]
    assert await recorded(boss, "stat-active") == ["0", "1", "0"]

    # No page ever had a token in its address.
    for page in (boss, spec, member):
        assert "eyJ" not in page.url
