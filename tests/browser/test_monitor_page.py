"""The supervisor's live monitor in a real browser (PRODUCT.md §8, docs/safety.md): a risk
alert → Monitor (with a reason, as an emergency) → the conversation read-only, history then
live → a whisper only the specialist sees → Join (with a reason) and a message both sides
see → Leave → Stop monitoring. Every step is checked where it lands."""

from __future__ import annotations

import json

import asyncpg
import pytest
from playwright.async_api import expect

from tests.browser.support import Web, ask, chat, conversation_id, put_profile, say
from tests.support.servers import wait_until

pytestmark = pytest.mark.browser


async def test_alert_monitor_whisper_join_leave_on_the_dashboard(web: Web, database_url: str) -> None:
    await put_profile(web.live, "spec-mon", "Ana", ["grief"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-mon")
    await spec.get_by_role("switch").click()
    member = await web.page("member")
    await web.login_token(member, "member", "Sam", "member-mon")
    boss = await web.page("supervisor")
    await web.login_token(boss, "supervisor", "Dana", "sup-mon")

    await ask(member, "grief")
    await expect(spec.get_by_test_id("offer")).to_have_count(1)
    await spec.get_by_test_id("offer-accept").click()
    cid = await conversation_id(member)
    view = chat(spec, cid)
    await say(member, "hello, first message")
    await say(member, "some days I want to k\u200bill myself")

    # The conversation list offers "Monitor" on the live conversation too.
    await boss.locator("#conversations-refresh").click()
    row = boss.locator(f'[data-testid="conversation-row"][data-conversation-id="{cid}"]')
    await expect(row.get_by_test_id("conversation-monitor")).to_have_accessible_name(
        "Monitor the live conversation of Sam with Ana"
    )
    await row.get_by_test_id("conversation-monitor").click()
    await expect(boss.get_by_test_id("monitor-target")).to_contain_text(cid)

    # The risk alert reaches the dashboard (its live region) with a Monitor button.
    alert = boss.get_by_test_id("alert").filter(has=boss.get_by_test_id("alert-monitor"))
    await expect(alert).to_have_count(1, timeout=20_000)
    await alert.get_by_test_id("alert-monitor").click()
    panel = boss.get_by_test_id("monitor-panel")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_label("Reason for monitoring (required)")).to_be_focused()
    await boss.keyboard.type("risk alert: plan mentioned")
    await panel.get_by_label("This is an emergency (say what it is in the reason)").check()
    await panel.get_by_test_id("monitor-start").click()

    log = panel.get_by_test_id("monitor-message")
    await expect(log).to_have_count(2)
    await expect(view.get_by_test_id("watching")).to_be_visible()
    # Live after the history, in seq order, no repeat.
    await say(member, "still here")
    await expect(log).to_have_count(3)
    assert await log.evaluate_all("els => els.map(e => e.dataset.seq)") == ["1", "2", "3"]

    words = "Ask whether they are safe tonight."
    await panel.get_by_label("Whisper to the specialist").fill(words)
    await panel.get_by_test_id("whisper-send").click()
    await expect(view.get_by_test_id("whisper")).to_have_text(f"Whisper from Dana: {words}")
    await web.shoot(boss, "supervisor-monitor", panel)

    await panel.get_by_test_id("join-reason").fill("member asked for more help")
    await panel.get_by_test_id("join-button").click()
    body = panel.get_by_test_id("join-body")
    await expect(body).to_be_focused()
    await boss.keyboard.type("Hi Sam, I'm Dana, a supervisor.")
    await boss.keyboard.press("Enter")
    await expect(member.get_by_text("Hi Sam, I'm Dana, a supervisor.")).to_be_visible()
    await expect(log).to_have_count(4)
    await web.shoot(boss, "supervisor-monitor-joined", panel)
    await panel.get_by_test_id("leave-button").click()
    await expect(panel.get_by_test_id("join-form")).to_be_visible()
    await panel.get_by_test_id("monitor-stop").click()
    await expect(panel).to_be_hidden()
    await expect(view.get_by_test_id("watching")).to_be_hidden()

    # The member never saw the whisper.
    await expect(member.get_by_text(words)).to_have_count(0)

    async def audited() -> list[tuple[str, str, bool]]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                """SELECT action, reason, detail FROM audit_log
                    WHERE action IN ('monitor', 'join') AND conversation_id = $1 ORDER BY id""",
                cid,
            )
        finally:
            await conn.close()
        out = []
        for r in rows:
            detail = r["detail"] if isinstance(r["detail"], dict) else json.loads(r["detail"] or "{}")
            out.append((r["action"], r["reason"], bool(detail.get("emergency"))))
        return out

    async def both() -> bool:
        return len(await audited()) == 2

    await wait_until(both, timeout=15)
    assert await audited() == [
        ("monitor", "risk alert: plan mentioned", True),
        ("join", "member asked for more help", True),
    ]
