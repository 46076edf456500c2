"""Issue 18 on the member page, in Chromium against a real service: closed hours with the
alternatives and crisis resources; past peers with "Ask for … again" (prefer_specialist);
a long wait that shows the alternatives while keeping the place. Captured at desktop and
phone width into docs/screenshots/ (with PEERCHAT_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from playwright.async_api import expect

from tests.browser.support import Web, put_profile
from tests.support.servers import LiveService, wait_until

pytestmark = pytest.mark.browser

ALTERNATIVES = [
    {
        "name": "SMART Recovery forum",
        "url": "https://forum.example/",
        "description": "Peers online all night",
    },
    {"name": "Evening warm line", "url": "https://warm.example/call", "description": "6 pm to 2 am"},
]


async def test_closed_hours_say_when_and_where_else_to_turn(webs: Callable[..., Web]) -> None:
    today = datetime.now(UTC).date()
    web = webs(
        PEERCHAT_HOURS="UTC daily 00:00-24:00",
        PEERCHAT_CLOSED_DATES=",".join((today + timedelta(days=i)).isoformat() for i in range(3)),
        PEERCHAT_ALTERNATIVES=json.dumps(ALTERNATIVES),
    )
    member = await web.page("member")
    await web.login_token(member, "member", "Noor", "member-noor")
    closed = member.get_by_test_id("closed-panel")
    await expect(closed).to_be_visible()
    await expect(member.get_by_test_id("opens-at")).to_contain_text("We open again")
    await expect(member.get_by_test_id("request-button")).to_be_disabled()
    await expect(member.get_by_test_id("request-form")).to_be_hidden()
    links = member.get_by_test_id("alternative-link")
    await expect(links).to_have_count(2)
    await expect(links.first).to_have_text("SMART Recovery forum")
    await expect(links.first).to_have_attribute("href", "https://forum.example/")
    await expect(member.get_by_test_id("alternative").first).to_contain_text("Peers online all night")
    await expect(member.get_by_test_id("alternatives-hint")).to_have_text(
        "While we are closed, these are open to you."
    )
    await web.shoot(member, "member-closed", show=member.get_by_test_id("alternatives-panel"))
    # The crisis resources are one click away from the closed notice.
    await member.get_by_test_id("closed-crisis").click()
    await expect(member.get_by_test_id("crisis-panel")).to_be_visible()
    await expect(member.get_by_test_id("crisis-resource").first).to_be_visible()


async def test_past_peers_and_ask_for_one_again(web: Web, live: LiveService) -> None:
    await put_profile(live, "spec-rosa", "Rosa", ["grief"])
    await put_profile(live, "spec-other", "Omar", ["grief"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Rosa", "spec-rosa")
    await spec.get_by_role("switch").click()
    member = await web.page("member")
    await web.login_token(member, "member", "Sam", "member-sam")
    await expect(member.get_by_test_id("past-peers")).to_be_hidden()
    await member.get_by_test_id("tag-grief").check()
    await member.get_by_role("button", name="Ask for a peer").click()
    await spec.get_by_role("button", name="Accept offer: grief · EN").click()
    await expect(member.get_by_test_id("chat-title")).to_have_text("Chat with Rosa")
    await member.get_by_test_id("end-button").click()
    await member.get_by_test_id("end-confirm").click()
    await member.get_by_test_id("rating-skip").click()

    # Back at the start (a reload lists past peers from welcome).
    await member.reload()
    await expect(member.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    peers = member.get_by_test_id("past-peer")
    await expect(peers).to_have_count(1)
    await expect(member.get_by_test_id("past-peer-name")).to_have_text("Rosa")
    # Another specialist is free too; asking for Rosa again offers it to Rosa.
    other = await web.page("specialist")
    await web.login_token(other, "specialist", "Omar", "spec-other")
    await other.get_by_role("switch").click()
    await member.get_by_role("button", name="Ask for Rosa again").click()
    await expect(member.get_by_test_id("preferred-peer")).to_contain_text("Rosa")
    await web.shoot(member, "member-past-peers", show=member.get_by_test_id("past-peers"))
    await member.get_by_role("button", name="Ask for a peer").click()
    await expect(spec.get_by_test_id("offer")).to_have_count(1)
    await expect(other.get_by_test_id("offer")).to_have_count(0)


async def test_a_long_wait_shows_the_alternatives_and_keeps_the_place(webs: Callable[..., Web]) -> None:
    web = webs(PEERCHAT_ALTERNATIVES=json.dumps(ALTERNATIVES))
    await put_profile(web.live, "spec-away", "Away", ["family"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Away", "spec-away")  # online, but away
    member = await web.page("member")
    await web.login_token(member, "member", "Ira", "member-ira")
    await expect(member.get_by_test_id("alternatives-panel")).to_be_hidden()
    await member.get_by_test_id("tag-grief").check()
    await member.get_by_role("button", name="Ask for a peer").click()
    await expect(member.get_by_test_id("queue-position")).to_have_text("1")
    panel = member.get_by_test_id("alternatives-panel")
    await expect(panel).to_be_visible()
    await expect(member.get_by_test_id("alternative-link")).to_have_count(2)
    await expect(member.get_by_test_id("queue-view")).to_be_visible()
    await expect(member.get_by_test_id("alternatives-hint")).to_contain_text("you keep your place in line")
    await web.shoot(member, "member-long-wait", show=panel)


async def test_a_member_away_past_the_grace_is_told_their_place_was_given_up(
    webs: Callable[..., Web], database_url: str
) -> None:
    web = webs(PEERCHAT_MEMBER_GRACE_S="2")
    member = await web.page("member")
    await web.login_token(member, "member", "Ola", "member-ola")
    await member.get_by_test_id("tag-grief").check()
    await member.get_by_role("button", name="Ask for a peer").click()
    await expect(member.get_by_test_id("queue-position")).to_have_text("1")
    # The tab goes elsewhere (the socket closes); the grace passes.
    await member.goto("/login")

    async def abandoned() -> bool:
        db = await asyncpg.connect(database_url)
        try:
            return bool(await db.fetchval("SELECT count(*) FROM requests WHERE cancel_reason = 'abandoned'"))
        finally:
            await db.close()

    await wait_until(abandoned, timeout=30)
    await member.goto("/member")
    await expect(member.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    await expect(member.get_by_test_id("notice")).to_have_text(
        "You were away for a while, so your place in line was given up. You can ask again.", timeout=15_000
    )
    await expect(member.get_by_test_id("start-view")).to_be_visible()


async def test_an_offer_says_when_the_member_is_away(web: Web, live: LiveService) -> None:
    member = await web.page("member")
    await web.login_token(member, "member", "Eve", "member-eve")
    await member.get_by_test_id("tag-family").check()
    await member.get_by_role("button", name="Ask for a peer").click()
    await expect(member.get_by_test_id("queue-position")).to_have_text("1")
    await member.goto("/login")  # the member's only socket closes; their place is kept
    await put_profile(live, "spec-fay", "Fay", ["family"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Fay", "spec-fay")
    await spec.get_by_role("switch").click()
    offer = spec.get_by_test_id("offer")
    await expect(offer).to_have_count(1)
    await expect(offer.get_by_test_id("offer-member-away")).to_have_text(
        "The member is away right now and may not answer at once."
    )
