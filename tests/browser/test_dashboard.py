"""The supervisor dashboard of issue 18 in a real browser: the specialist roster with live
state (busy produced, offline, available) and load, "Set away" reaching the specialist's
socket and the audit log; members' feedback by week, with comments and no member named; the
audit log filtered, paged back and exported as CSV (formulas defused); the roster's load
following hand-overs made on another process at once, not at its 30 s refresh."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Locator, expect

from tests.browser.support import Web, put_profile
from tests.support.client import Client, token
from tests.support.flows import matched
from tests.support.servers import LiveService
from tests.support.transfers import specialist_with_profile

pytestmark = pytest.mark.browser

# Well inside the roster's 30 s refresh: what the page shows within this came from an event.
FOLLOW_MS = 8000


async def busy_specialist_with_feedback(live: LiveService) -> tuple[Client, Client]:
    """spec-busy (max 1) in an active conversation; an ended one before it, rated with a
    comment. Returns the busy specialist's and that member's sockets, still open."""
    await put_profile(live, "spec-busy", "Rosa", ["grief"])
    spec, _ = await Client.connect(live.ws, token("specialist", "spec-busy", "Rosa"))
    await spec.call({"type": "availability", "status": "available"}, "availability")
    for n, member_id in enumerate(("acct-hidden-1", "acct-hidden-2")):
        member, _ = await Client.connect(live.ws, token("member", member_id, "Sam"))
        queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
        started = await spec.call(
            {"type": "claim", "request_id": queued["request_id"]}, "conversation_started"
        )
        cid = started["conversation"]["id"]
        await member.expect("conversation_started")
        if n == 0:
            await member.call({"type": "end", "conversation_id": cid}, "conversation_ended")
            saved = await member.call(
                {
                    "type": "feedback",
                    "conversation_id": cid,
                    "rating": 4,
                    "comment": "She listened. Thank you.",
                },
                "feedback_saved",
            )
            assert saved["type"] == "feedback_saved", saved
            await member.close()
    # At capacity: one chat of one.
    conn = await asyncpg.connect(live.env["DATABASE_URL"])
    try:
        await conn.execute("UPDATE specialists SET max_chats = 1 WHERE id = 'spec-busy'")
    finally:
        await conn.close()
    return spec, member


async def test_roster_set_away_and_feedback(web: Web) -> None:
    busy, member = await busy_specialist_with_feedback(web.live)
    await put_profile(web.live, "spec-on", "Ana", ["family"])
    await put_profile(web.live, "spec-off", "Bea", ["housing"])
    on_shift, _ = await Client.connect(web.live.ws, token("specialist", "spec-on", "Ana"))
    await on_shift.call({"type": "availability", "status": "available"}, "availability")

    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Lee", "sup-roster")

    def row(sid: str) -> Locator:
        return boss.locator(f'[data-testid="specialist-row"][data-specialist-id="{sid}"]')

    await expect(row("spec-busy")).to_have_attribute("data-status", "busy")
    await expect(row("spec-busy").get_by_test_id("specialist-status")).to_have_text("busy (at capacity)")
    await expect(row("spec-busy").get_by_test_id("specialist-load")).to_have_text("1 / 1")
    await expect(row("spec-on")).to_have_attribute("data-status", "available")
    await expect(row("spec-on").get_by_test_id("specialist-load")).to_have_text("0 / 3")
    await expect(row("spec-off")).to_have_attribute("data-status", "offline")
    await expect(row("spec-off").get_by_test_id("set-away")).to_have_count(0)
    await expect(boss.get_by_test_id("stat-busy")).to_have_text("1")
    await web.shoot(boss, "supervisor-roster", show=boss.get_by_test_id("specialists-panel"))

    # Set away: stored, echoed to the specialist's socket, shown, and audited.
    await row("spec-on").get_by_test_id("set-away").click()
    echo = await on_shift.expect("availability", where=lambda f: f["status"] == "away", timeout=15)
    assert echo["reason"] == "supervisor"
    await expect(row("spec-on")).to_have_attribute("data-status", "away")
    await expect(row("spec-on").get_by_test_id("set-away")).to_have_count(0)
    await expect(boss.get_by_test_id("notice")).to_have_text("Ana is now away.")
    await expect(boss.get_by_test_id("stat-away")).to_have_text("1")
    await boss.get_by_test_id("audit-refresh").click()
    first = boss.get_by_test_id("audit-row").first
    await expect(first).to_contain_text("set away")
    await expect(first).to_contain_text("spec-on")
    await expect(first).to_contain_text("Lee (sup-roster)")

    # Feedback: by week, the average and the comment; no member named.
    fb = boss.get_by_test_id("feedback-row")
    await expect(fb).to_have_count(1)
    await expect(fb).to_contain_text("Rosa")
    await expect(fb.get_by_test_id("feedback-count")).to_have_text("1")
    await expect(fb.get_by_test_id("feedback-average")).to_have_text("4.0 / 5")
    await expect(fb.get_by_test_id("feedback-comment")).to_contain_text("She listened. Thank you.")
    panel_text = await boss.get_by_test_id("feedback-panel").inner_text()
    assert "acct-hidden" not in panel_text and "Sam" not in panel_text
    # One specialist at a time: Ana has none.
    await boss.get_by_test_id("feedback-specialist").select_option("spec-on")
    await boss.get_by_test_id("feedback-show").click()
    await expect(fb).to_have_count(0)
    await expect(boss.get_by_test_id("feedback-empty")).to_be_visible()
    await boss.get_by_test_id("feedback-specialist").select_option("spec-busy")
    await boss.get_by_test_id("feedback-show").click()
    await expect(fb).to_have_count(1)
    await web.shoot(boss, "supervisor-feedback", show=boss.get_by_test_id("feedback-panel"))

    # The conversation list: the active one, then the ended one; "Read…" fills the transcript
    # form with its id and asks for the reason.
    conv = boss.get_by_test_id("conversation-row")
    await expect(conv).to_have_count(1)
    await expect(conv).to_have_attribute("data-state", "active")
    await expect(conv).to_contain_text("Sam")
    await expect(conv).to_contain_text("Rosa")
    await expect(conv).to_contain_text("grief")
    await boss.get_by_test_id("conversations-state").select_option("ended")
    await boss.get_by_test_id("conversations-show").click()
    await expect(conv).to_have_attribute("data-state", "ended")
    ended_id = await conv.get_attribute("data-conversation-id")
    assert ended_id
    await conv.get_by_test_id("conversation-read").click()
    await expect(boss.get_by_test_id("transcript-conversation-id")).to_have_value(ended_id)
    await expect(boss.get_by_test_id("transcript-reason")).to_be_focused()
    await boss.keyboard.type("Quality review of a rated chat")
    await boss.get_by_test_id("transcript-submit").click()
    await expect(boss.get_by_test_id("transcript-title")).to_have_text(f"Conversation {ended_id}: 0 messages")
    await boss.get_by_test_id("conversations-risk").check()
    await boss.get_by_test_id("conversations-show").click()
    await expect(conv).to_have_count(0)
    await expect(boss.get_by_test_id("conversations-empty")).to_be_visible()
    await boss.get_by_test_id("conversations-risk").uncheck()
    await boss.get_by_test_id("conversations-state").select_option("")
    await boss.get_by_test_id("conversations-show").click()
    await expect(conv).to_have_count(2)
    await web.shoot(boss, "supervisor-conversations", show=boss.get_by_test_id("conversations-panel"))
    for c in (busy, member, on_shift):
        await c.close()


async def test_audit_log_filtered_paged_and_exported(web: Web) -> None:
    conn = await asyncpg.connect(web.live.env["DATABASE_URL"])
    try:
        await conn.execute(
            """INSERT INTO audit_log (actor_id, actor_role, actor_name, action, target, reason)
               SELECT 'sup-old', 'supervisor', '=Kim', 'edit_profile', 'spec-' || g, NULL
               FROM generate_series(1, 70) g"""
        )
        await conn.execute(
            """INSERT INTO audit_log (actor_id, actor_role, actor_name, action, conversation_id, reason)
               VALUES ('sup-old', 'supervisor', '=Kim', 'read_transcript', 'conv-7', '@review')"""
        )
    finally:
        await conn.close()
    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Lee", "sup-audit")
    rows = boss.get_by_test_id("audit-row")
    await expect(rows).to_have_count(50)
    await expect(boss.get_by_test_id("audit-more")).to_be_visible()
    await boss.get_by_test_id("audit-more").click()
    await expect(rows).to_have_count(71)
    await expect(boss.get_by_test_id("audit-more")).to_be_hidden()
    await expect(boss.get_by_test_id("audit-status")).to_have_text("71 entries shown.")

    # By action, by conversation, by actor.
    await boss.get_by_test_id("audit-action").select_option("read_transcript")
    await boss.get_by_test_id("audit-apply").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first.get_by_test_id("audit-reason")).to_have_text("@review")
    await boss.get_by_test_id("audit-action").select_option("")
    await boss.get_by_test_id("audit-conversation").fill("conv-7")
    await boss.get_by_test_id("audit-apply").click()
    await expect(rows).to_have_count(1)
    await boss.get_by_test_id("audit-conversation").fill("")
    await boss.get_by_test_id("audit-actor").fill("nobody")
    await boss.get_by_test_id("audit-apply").click()
    await expect(rows).to_have_count(0)
    await expect(boss.get_by_test_id("audit-status")).to_have_text("No entries match.")
    await boss.get_by_test_id("audit-actor").fill("sup-old")
    await boss.get_by_test_id("audit-action").select_option("read_transcript")
    await boss.get_by_test_id("audit-apply").click()
    await expect(rows).to_have_count(1)
    await web.shoot(boss, "supervisor-audit", show=boss.get_by_test_id("audit-panel"))

    # Export with the same filters: a CSV file, formulas defused.
    async with boss.expect_download() as info:
        await boss.get_by_test_id("audit-export").click()
    download = await info.value
    assert download.suggested_filename == "audit.csv"
    data = await asyncio.to_thread(Path(await download.path()).read_bytes)
    lines = data.decode("utf-8").removesuffix("\r\n").split("\r\n")
    assert lines[0] == "id,at,actor_id,actor_name,action,conversation_id,target,reason,detail"
    assert len(lines) == 2
    assert ",sup-old,'=Kim,read_transcript,conv-7,,'@review," in lines[1]
    await expect(boss.get_by_test_id("audit-status")).to_have_text("The audit log was exported as audit.csv.")


async def test_the_roster_load_follows_hand_overs_made_on_another_process(
    webs: Callable[..., Web],
) -> None:
    """PRODUCT.md §9: a hand-over moves a conversation from one specialist's load to
    another's, and the supervisor sees it at once, whichever process either is on. Neither
    step changes the `queue_stats` counts (nobody reaches or leaves capacity, wrap-up is a
    moment in tests), which were all the roster reloaded on besides its 30 s timer."""
    near, far = webs(), webs()
    pair = await matched(far.live, member_id="acct-roster-ho", specialist_id="spec-ana-ro")
    ben = await specialist_with_profile(far.live, "spec-ben-ro", "Ben", max_chats=3)
    boss = await near.page("supervisor")
    await near.login_token(boss, "supervisor", "Lee", "sup-roster-ho")

    def load(sid: str) -> Locator:
        return boss.locator(f'[data-testid="specialist-row"][data-specialist-id="{sid}"]').get_by_test_id(
            "specialist-load"
        )

    await expect(load("spec-ana-ro")).to_have_text("1 / 2")
    await expect(load("spec-ben-ro")).to_have_text("0 / 3")

    # Warm: Ana hands it to Ben, who accepts.
    await pair.specialist.call(
        {
            "type": "transfer",
            "conversation_id": pair.conversation_id,
            "to_specialist": "spec-ben-ro",
            "note": "n",
        },
        "transfer",
    )
    offer = await ben.expect("offer", timeout=20)
    await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    await expect(load("spec-ana-ro")).to_have_text("0 / 2", timeout=FOLLOW_MS)
    await expect(load("spec-ben-ro")).to_have_text("1 / 3", timeout=FOLLOW_MS)

    # Cold: Ben sends it back to the queue, and Ana, available again (wrap-up is a moment in
    # tests), takes its offer.
    await ben.call({"type": "transfer", "conversation_id": pair.conversation_id, "note": "n"}, "transfer")
    offer = await pair.specialist.expect("offer", where=lambda o: o.get("transfer") is not None, timeout=30)
    await expect(load("spec-ben-ro")).to_have_text("0 / 3", timeout=FOLLOW_MS)
    await pair.specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    await expect(load("spec-ana-ro")).to_have_text("1 / 2", timeout=FOLLOW_MS)
    await expect(load("spec-ben-ro")).to_have_text("0 / 3")
