"""Handing a conversation on in real browsers (PRODUCT.md §9): the specialist console's
transfer dialog (who fits, a handoff note), a warm transfer declined (told calmly, with
"Back to the queue instead" offered) and then accepted; the handing-on console closes the
chat into wrap-up; the receiving console shows who handed it on, the note and the whole
history; the member's page says who has their conversation now and goes on with them.
The supervisor dashboard's "Transfer…" sends an active conversation back to the queue: the
member is told they are being connected to another peer and can keep writing, and what
they write meanwhile reaches whoever takes it."""

from __future__ import annotations

import asyncpg
import pytest
from playwright.async_api import Page, expect

from tests.browser.support import Web, ask, chat, conversation_id, put_profile, say
from tests.support.client import Client, token

pytestmark = pytest.mark.browser

NOTE = "Talked about her sister; no risk today. Prefers short answers."


async def _available(page: Page) -> None:
    await page.get_by_role("switch").click()
    await expect(page.get_by_test_id("availability-toggle")).to_have_attribute("data-status", "available")


async def test_warm_transfer_declined_then_accepted_across_three_pages(web: Web, database_url: str) -> None:
    await put_profile(web.live, "spec-ana-h", "Ana", ["grief"])
    await put_profile(web.live, "spec-ben-h", "Ben", ["grief"])
    ana = await web.page("specialist Ana")
    await web.login_token(ana, "specialist", "Ana", "spec-ana-h")
    await _available(ana)
    # Ben is signed in but away: online, so he may be asked directly, and no offer of the
    # member's request goes to him.
    ben = await web.page("specialist Ben")
    await web.login_token(ben, "specialist", "Ben", "spec-ben-h")
    member = await web.page("member")
    await web.login_token(member, "member", "Sam", "acct-handed-on")
    await ask(member, "grief")
    await ana.get_by_test_id("offer-accept").click()
    cid = await conversation_id(member)
    await say(member, "My sister called me today.")
    ana_chat = chat(ana, cid)
    await expect(ana_chat.get_by_test_id("message-body")).to_have_text(["My sister called me today."])
    await say(ana, "I'm glad you told me.", ana_chat)
    await expect(member.get_by_test_id("message-body")).to_have_count(2)

    # Ana opens the dialog: Ben fits (online, English, a free slot); she picks him.
    await ana_chat.get_by_test_id("transfer-open").click()
    dialog = ana.get_by_test_id("transfer-dialog")
    await expect(dialog).to_be_visible()
    target = dialog.get_by_test_id("transfer-target")
    await expect(target).to_have_count(1)
    await expect(target).to_have_attribute("data-specialist-id", "spec-ben-h")
    await expect(dialog.get_by_test_id("transfer-targets")).to_contain_text("Ben")
    await target.check()
    await dialog.get_by_test_id("transfer-note").fill(NOTE)
    await web.shoot(ana, "specialist-transfer-dialog", dialog)
    await dialog.get_by_test_id("transfer-send").click()
    await expect(dialog).to_be_hidden()
    await expect(ana_chat.get_by_test_id("transfer-state")).to_contain_text("Waiting for Ben to accept")

    # Ben declines: Ana keeps the conversation, is told calmly, and may go cold instead.
    offer = ben.get_by_test_id("offer")
    await expect(offer.get_by_test_id("offer-transfer")).to_have_text("Handed on by Ana")
    await expect(offer.get_by_test_id("offer-transfer-note")).to_have_text(NOTE)
    await offer.get_by_test_id("offer-decline").click()
    await expect(ana_chat.get_by_test_id("transfer-state")).to_contain_text(
        "Ben could not take it this time. The conversation is still yours."
    )
    await expect(ana_chat.get_by_test_id("transfer-cold")).to_be_visible()
    await expect(ana_chat.get_by_test_id("composer-input")).to_be_enabled()
    await web.shoot(ana, "specialist-transfer-failed", ana_chat)

    # She asks Ben again; this time he accepts.
    await ana_chat.get_by_test_id("transfer-open").click()
    await dialog.get_by_test_id("transfer-target").check()
    await dialog.get_by_test_id("transfer-note").fill(NOTE)
    await dialog.get_by_test_id("transfer-send").click()
    await expect(ben.get_by_test_id("offer")).to_have_count(1)
    await web.shoot(ben, "specialist-transfer-offer", ben.get_by_test_id("offers-panel"))
    await ben.get_by_test_id("offer-accept").click()

    # Ana's console: the chat is closed as for any end, wrap-up starts, no more transfer.
    await expect(ana_chat.get_by_test_id("ended-notice")).to_have_text(
        "This conversation was handed on to another peer."
    )
    await expect(ana_chat.get_by_test_id("wrap-up")).to_be_visible()
    await expect(ana_chat.get_by_test_id("transfer-open")).to_be_hidden()
    await expect(ana_chat.get_by_test_id("composer")).to_be_hidden()

    # Ben's console: who handed it on, the note, and the whole history.
    ben_chat = chat(ben, cid)
    await expect(ben_chat.get_by_test_id("handoff-from")).to_contain_text(
        "Ana handed this conversation to you"
    )
    await expect(ben_chat.get_by_test_id("handoff-note")).to_have_text(NOTE)
    await expect(ben_chat.get_by_test_id("message-body")).to_have_text(
        ["My sister called me today.", "I'm glad you told me."]
    )
    await web.shoot(ben, "specialist-received-transfer", ben_chat)

    # The member: one calm line, the chat now names Ben, and it goes on with him only.
    line = member.get_by_test_id("service-line")
    await expect(line).to_have_text(
        "Ana has handed your conversation to Ben, who can see what you've written so far."
    )
    await expect(member.get_by_test_id("chat-title")).to_have_text("Chat with Ben")
    await say(member, "Hi Ben.")
    await expect(ben_chat.get_by_test_id("message-body")).to_have_count(3)
    await expect(ben_chat.get_by_test_id("message-body").nth(2)).to_have_text("Hi Ben.")
    await say(ben, "Hello Sam, Ana told me a little.", ben_chat)
    await expect(member.get_by_test_id("message-body").last).to_have_text("Hello Sam, Ana told me a little.")
    await expect(ana_chat.get_by_test_id("message-body")).to_have_count(2)
    await web.shoot(member, "member-handed-on", member.get_by_test_id("chat"))
    # The note is staff-only: nowhere on the member's page.
    assert "sister; no risk" not in await member.content()

    db = await asyncpg.connect(database_url)
    try:
        owner = await db.fetchval("SELECT specialist_id FROM conversations WHERE id = $1", cid)
    finally:
        await db.close()
    assert owner == "spec-ben-h"
    web.assert_clean()


async def test_supervisor_sends_a_conversation_back_to_the_queue_and_the_member_keeps_writing(
    web: Web,
) -> None:
    await put_profile(web.live, "spec-cold-a", "Ana", ["anxiety"])
    await put_profile(web.live, "spec-cold-b", "Ben", ["anxiety"])
    ana, _ = await Client.connect(web.live.ws, token("specialist", "spec-cold-a", "Ana"))
    await ana.call({"type": "availability", "status": "available"}, "availability")
    member = await web.page("member")
    await web.login_token(member, "member", "Sam", "acct-cold-page")
    await ask(member, "anxiety")
    offer = await ana.expect("offer", timeout=20)
    await ana.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    cid = await conversation_id(member)

    sup = await web.page("supervisor")
    await web.login_token(sup, "supervisor", "Dana", "sup-cold-page")
    row = sup.locator(f'[data-testid="conversation-row"][data-conversation-id="{cid}"]')
    await row.get_by_test_id("conversation-transfer").click()
    dialog = sup.get_by_test_id("transfer-dialog")
    await expect(dialog.get_by_test_id("transfer-about")).to_contain_text("Sam")
    await expect(dialog.get_by_test_id("transfer-targets-status")).to_contain_text("Nobody who fits")
    await dialog.get_by_test_id("transfer-queue").check()
    await dialog.get_by_test_id("transfer-note").fill("Needs someone tonight qc9")
    await web.shoot(sup, "supervisor-transfer-dialog", dialog)
    await dialog.get_by_test_id("transfer-send").click()
    await expect(sup.get_by_test_id("notice")).to_contain_text("Transfer asked for")

    ended = await ana.expect("conversation_ended", timeout=20)
    assert (ended["by"], ended["reason"]) == ("specialist", "transferred")
    await expect(member.get_by_test_id("service-line")).to_contain_text(
        "We are connecting you with another peer. You can keep writing"
    )
    await expect(member.get_by_test_id("chat-title")).to_have_text("Chat with your next peer")
    await say(member, "Still here, waiting.")
    await expect(member.get_by_test_id("message").last).to_have_attribute("data-state", "sent")
    await web.shoot(member, "member-handed-on-waiting", member.get_by_test_id("chat"))

    # Ben goes available and takes it: he reads what was written while it waited.
    ben, _ = await Client.connect(web.live.ws, token("specialist", "spec-cold-b", "Ben"))
    await ben.call({"type": "availability", "status": "available"}, "availability")
    handed = await ben.expect("offer", where=lambda m: m.get("transfer") is not None, timeout=20)
    assert handed["transfer"]["note"] == "Needs someone tonight qc9"
    started = await ben.call({"type": "accept", "offer_id": handed["offer_id"]}, "conversation_started")
    assert started["conversation"]["id"] == cid
    history = await ben.call({"type": "history", "conversation_id": cid}, "history")
    assert [m["body"] for m in history["messages"]] == ["Still here, waiting."]
    await expect(member.get_by_test_id("service-line").last).to_have_text(
        "Ana has handed your conversation to Ben, who can see what you've written so far."
    )
    await expect(member.get_by_test_id("chat-title")).to_have_text("Chat with Ben")
    for client in (ana, ben):
        await client.close()
    web.assert_clean()


async def test_a_transfer_under_way_survives_a_reload_on_every_page(web: Web) -> None:
    # Issue 16's leftovers: after a reload the sender's console still says it waits for Ben;
    # the supervisor's rows say "transferring to Ben (warm)" / "back in the queue (cold)" as
    # it happens and after a reload; the member reloaded during a cold wait sees their chat
    # with a calm line, not a separate request.
    await put_profile(web.live, "spec-rl-a", "Ana", ["grief"])
    await put_profile(web.live, "spec-rl-b", "Ben", ["grief"])
    ben, _ = await Client.connect(web.live.ws, token("specialist", "spec-rl-b", "Ben"))
    # A reply means his presence is written (after `welcome`): the dialog will list him.
    await ben.call({"type": "availability", "status": "away"}, "availability")
    ana = await web.page("specialist Ana")
    await web.login_token(ana, "specialist", "Ana", "spec-rl-a")
    await _available(ana)
    member = await web.page("member")
    await web.login_token(member, "member", "Sam", "acct-reloads")
    await ask(member, "grief")
    await ana.get_by_test_id("offer-accept").click()
    cid = await conversation_id(member)
    await say(member, "Are you still there?")
    sup = await web.page("supervisor")
    await web.login_token(sup, "supervisor", "Dana", "sup-reloads")
    row = sup.locator(f'[data-testid="conversation-row"][data-conversation-id="{cid}"]')
    await expect(row).to_have_count(1)
    await expect(row.get_by_test_id("conversation-transfer-state")).to_have_count(0)

    # Warm, to Ben: the dashboard's row says so as it happens.
    ana_chat = chat(ana, cid)
    await ana_chat.get_by_test_id("transfer-open").click()
    dialog = ana.get_by_test_id("transfer-dialog")
    await dialog.get_by_test_id("transfer-target").check()
    await dialog.get_by_test_id("transfer-send").click()
    offer = await ben.expect("offer", timeout=20)
    await expect(row.get_by_test_id("conversation-transfer-state")).to_have_text("transferring to Ben (warm)")
    # Ana reloads: her chat still says it waits for Ben, and "Hand on…" waits too.
    await ana.reload()
    ana_chat = chat(ana, cid)
    await expect(ana_chat.get_by_test_id("transfer-state")).to_contain_text("Waiting for Ben to accept")
    await expect(ana_chat.get_by_test_id("transfer-open")).to_be_disabled()
    await web.shoot(ana, "specialist-transfer-after-reload", ana_chat)
    await sup.reload()
    row = sup.locator(f'[data-testid="conversation-row"][data-conversation-id="{cid}"]')
    await expect(row.get_by_test_id("conversation-transfer-state")).to_have_text("transferring to Ben (warm)")

    # Ben declines; Ana sends it back to the queue instead.
    await ben.call({"type": "decline", "offer_id": offer["offer_id"]}, "declined")
    await expect(row.get_by_test_id("conversation-transfer-state")).to_have_count(0)
    await expect(ana_chat.get_by_test_id("transfer-state")).to_contain_text(
        "Ben could not take it this time."
    )
    await ana_chat.get_by_test_id("transfer-cold").click()
    await expect(ana_chat.get_by_test_id("ended-notice")).to_have_text(
        "This conversation was handed on to another peer."
    )
    await expect(row.get_by_test_id("conversation-transfer-state")).to_have_text("back in the queue (cold)")
    await web.shoot(sup, "supervisor-transfer-rows", row)

    # The member reloads during the cold wait: their chat, a calm line, no queue screen.
    await expect(member.get_by_test_id("service-line")).to_have_count(1)
    await member.reload()
    await expect(member.get_by_test_id("chat-title")).to_have_text("Chat with your next peer")
    await expect(member.get_by_test_id("service-line")).to_have_text(
        "Your conversation has been handed on. We are connecting you with another peer. You can keep"
        " writing: they will see everything you write."
    )
    await expect(member.get_by_test_id("message-body")).to_have_text(["Are you still there?"])
    await expect(member.get_by_test_id("cancel-request")).to_be_hidden()
    await say(member, "Waiting, after a reload.")
    await expect(member.get_by_test_id("message").last).to_have_attribute("data-state", "sent")
    await web.shoot(member, "member-handed-on-after-reload", member.get_by_test_id("chat"))

    # Ben takes it from the queue: the member is told calmly, the row names him, nothing pending.
    await ben.call({"type": "availability", "status": "available"}, "availability")
    handed = await ben.expect("offer", where=lambda m: m.get("transfer") is not None, timeout=20)
    await ben.call({"type": "accept", "offer_id": handed["offer_id"]}, "conversation_started")
    await expect(member.get_by_test_id("service-line").last).to_have_text(
        "Ben has taken over your conversation and can see what you've written so far."
    )
    await expect(member.get_by_test_id("chat-title")).to_have_text("Chat with Ben")
    await expect(row.get_by_test_id("conversation-transfer-state")).to_have_count(0)
    await expect(
        sup.locator(f'[data-testid="conversation-row"][data-conversation-id="{cid}"]')
    ).to_contain_text("Ben")
    await ben.close()
    web.assert_clean()
