"""A member's page survives a dropped connection and a reload without the member losing,
doubling or reordering anything (PRODUCT.md §5 resume; docs/web.md "The protocol client"):
messages the specialist sent meanwhile arrive once and in order, and a message typed while
offline is delivered after the reconnection exactly once (checked in PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Locator, Page, expect

from tests.browser.support import Web, put_profile, say

pytestmark = pytest.mark.browser


async def start_chat(web: Web, sid: str, mid: str) -> tuple[Page, Page, str]:
    """A member and a specialist in a chat (claimed from the queue)."""
    await put_profile(web.live, sid, "Ana", ["grief"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", sid)
    member = await web.page("member")
    await web.login_token(member, "member", "Sam", mid)
    await member.get_by_test_id("tag-grief").check()
    await member.get_by_test_id("request-button").click()
    await expect(member.get_by_test_id("queue-view")).to_be_visible()
    await spec.get_by_test_id("claim-button").click()
    chat = member.get_by_test_id("chat")
    await expect(chat).to_have_count(1)
    cid = await chat.get_attribute("data-conversation-id")
    assert cid
    await expect(spec.get_by_test_id("chat-title")).to_have_text("Chat with Sam")
    return member, spec, cid


async def shown(page: Page) -> list[dict[str, Any]]:
    """Every message element on the page, in document order."""
    found: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="message"]')].map((li) => ({
            seq: li.dataset.seq ? Number(li.dataset.seq) : null,
            role: li.dataset.senderRole,
            state: li.dataset.state || null,
            body: li.querySelector('[data-testid="message-body"]').textContent,
        }))"""
    )
    return found


async def stored(database_url: str, cid: str) -> list[tuple[int, str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT seq, sender_role, body FROM messages WHERE conversation_id = $1 ORDER BY seq", cid
        )
    finally:
        await conn.close()
    return [(r["seq"], r["sender_role"], r["body"]) for r in rows]


def bodies(messages: Locator) -> Locator:
    return messages.get_by_test_id("message-body")


async def test_a_dropped_connection_loses_nothing_and_doubles_nothing(web: Web, database_url: str) -> None:
    member, spec, cid = await start_chat(web, "spec-resume", "member-resume")
    await say(member, "Hi Ana.")
    await expect(spec.get_by_test_id("message")).to_have_count(1)
    await expect(member.get_by_test_id("message")).to_have_attribute("data-seq", "1")

    # The member's network goes away.
    await member.context.set_offline(True)
    status = member.get_by_test_id("connection-status")
    await expect(status).not_to_have_attribute("data-state", "connected")
    await expect(spec.get_by_test_id("peer-status")).to_have_attribute("data-status", "reconnecting")

    # Meanwhile the specialist sends three messages, and the member types one.
    for text in ("Are you still there?", "Take your time.", "I'll be here."):
        await say(spec, text)
    await expect(spec.get_by_test_id("message").last).to_have_attribute("data-seq", "4")
    await say(member, "Sorry, my train went into a tunnel.")
    pending = member.get_by_test_id("message").last
    await expect(pending).to_have_attribute("data-state", "pending")
    await expect(pending.get_by_test_id("receipt")).to_have_text("Sending…")
    # Offline for a while (several back-off steps): the page waits for the network instead of
    # failing connection attempts (each would log a console error, which fails the test).
    await asyncio.sleep(2)
    await expect(bodies(member.get_by_test_id("message"))).to_have_count(2)  # nothing arrived offline
    await expect(status).to_have_attribute("data-state", "reconnecting")

    # Back online: everything arrives once, in order, and the typed message goes out once.
    await member.context.set_offline(False)
    await expect(status).to_have_attribute("data-state", "connected")
    messages = member.get_by_test_id("message")
    await expect(messages).to_have_count(5)
    await expect(messages.last).to_have_attribute("data-state", "sent")
    expected = [
        (1, "member", "Hi Ana."),
        (2, "peer", "Are you still there?"),
        (3, "peer", "Take your time."),
        (4, "peer", "I'll be here."),
        (5, "member", "Sorry, my train went into a tunnel."),
    ]
    assert [(m["seq"], m["role"], m["body"]) for m in await shown(member)] == expected
    await expect(spec.get_by_test_id("message")).to_have_count(5)
    await expect(bodies(spec.get_by_test_id("message")).last).to_have_text(
        "Sorry, my train went into a tunnel."
    )
    await expect(spec.get_by_test_id("peer-status")).to_have_attribute("data-status", "connected")
    await expect(member.get_by_test_id("ended-notice")).to_be_hidden()

    rows = await stored(database_url, cid)
    assert [r[2] for r in rows].count("Sorry, my train went into a tunnel.") == 1
    assert [(s, role.replace("specialist", "peer"), b) for s, role, b in rows] == expected

    # The conversation simply goes on.
    await say(spec, "Welcome back.")
    await expect(messages).to_have_count(6)
    await expect(messages.last).to_have_attribute("data-seq", "6")
    # Nothing showed up twice, even later.
    assert [m["seq"] for m in await shown(member)] == [1, 2, 3, 4, 5, 6]


async def test_a_reload_mid_conversation_restores_the_chat_and_its_history(
    web: Web, database_url: str
) -> None:
    member, spec, cid = await start_chat(web, "spec-reload", "member-reload")
    await say(member, "First.")
    await expect(spec.get_by_test_id("message")).to_have_count(1)
    await say(spec, "Second, from Ana.")
    await say(member, "Third.")
    await expect(spec.get_by_test_id("message")).to_have_count(3)
    await expect(member.get_by_test_id("message")).to_have_count(3)

    await member.reload()
    await expect(member.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    chat = member.get_by_test_id("chat")
    await expect(chat).to_have_attribute("data-conversation-id", cid)
    await expect(member.get_by_test_id("start-view")).to_be_hidden()
    await expect(member.get_by_test_id("chat-title")).to_have_text("Chat with Ana")
    messages = member.get_by_test_id("message")
    await expect(messages).to_have_count(3)
    assert [(m["seq"], m["role"], m["body"]) for m in await shown(member)] == [
        (1, "member", "First."),
        (2, "peer", "Second, from Ana."),
        (3, "member", "Third."),
    ]
    await expect(member.get_by_test_id("message-sender")).to_have_text(["You", "Ana", "You"])

    # Both ways still work, with the next seq.
    await say(member, "Fourth, after the reload.")
    await expect(spec.get_by_test_id("message")).to_have_count(4)
    await say(spec, "Fifth.")
    await expect(messages).to_have_count(5)
    assert [m["seq"] for m in await shown(member)] == [1, 2, 3, 4, 5]

    # The specialist's console reloads just as well.
    await spec.reload()
    await expect(spec.get_by_test_id("chat-tab")).to_have_count(1)
    await expect(spec.get_by_test_id("message")).to_have_count(5)
    assert [m["seq"] for m in await shown(spec)] == [1, 2, 3, 4, 5]
    assert [s for s, _, _ in await stored(database_url, cid)] == [1, 2, 3, 4, 5]


async def test_a_chat_the_specialist_ended_while_the_member_was_offline(web: Web) -> None:
    member, spec, _ = await start_chat(web, "spec-gone", "member-gone")
    await say(member, "Hi.")
    await expect(spec.get_by_test_id("message")).to_have_count(1)

    await member.context.set_offline(True)
    await expect(spec.get_by_test_id("peer-status")).to_have_attribute("data-status", "reconnecting")
    await say(spec, "I have to go now. Take care, Sam.")
    await spec.get_by_test_id("end-button").click()
    await spec.get_by_test_id("end-confirm").click()
    await expect(spec.get_by_test_id("ended-notice")).to_have_text("You ended the conversation.")

    await member.context.set_offline(False)
    await expect(member.get_by_test_id("rating-view")).to_be_visible()
    await expect(bodies(member.get_by_test_id("message"))).to_have_text(
        ["Hi.", "I have to go now. Take care, Sam."]
    )
    # Said as it happened: who ended it, not a vague "the service".
    await expect(member.get_by_test_id("ended-notice")).to_have_text("Ana ended the conversation.")
