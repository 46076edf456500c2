"""Safety on the specialist console in a real browser (PRODUCT.md §8, docs/safety.md): the
risk mark after a disguised risk phrase, who is watching, a supervisor's whisper shown to
the specialist only, and "Flag for support" from the keyboard."""

from __future__ import annotations

import asyncpg
import pytest
from playwright.async_api import expect

from tests.browser.support import Web, ask, chat, conversation_id, put_profile, say, tab
from tests.support.client import Client, token
from tests.support.servers import wait_until

pytestmark = pytest.mark.browser


async def test_risk_mark_watching_whisper_and_flag_on_the_specialist_console(
    web: Web, database_url: str
) -> None:
    await put_profile(web.live, "spec-safe", "Ana", ["grief"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-safe")
    await spec.get_by_role("switch").click()
    member = await web.page("member")
    await web.login_token(member, "member", "Sam", "member-safe")
    await ask(member, "grief")
    await expect(spec.get_by_test_id("offer")).to_have_count(1)
    await spec.get_by_test_id("offer-accept").click()
    cid = await conversation_id(member)

    await say(member, "some days I want to k\u200bill myself")
    await expect(spec.locator("li", has=tab(spec, cid)).get_by_test_id("risk-mark")).to_have_text("risk")

    supervisor, _ = await Client.connect(web.live.ws, token("supervisor", "sup-page", "Dana"))
    await supervisor.call({"type": "monitor", "conversation_id": cid, "reason": "risk alert"}, "history")
    view = chat(spec, cid)
    await expect(view.get_by_test_id("watching")).to_be_visible()
    words = "Ask whether they are safe tonight."
    await supervisor.call({"type": "whisper", "conversation_id": cid, "body": words}, "whisper")
    whisper = view.get_by_test_id("whisper")
    await expect(whisper).to_have_text(f"Whisper from Dana: {words}")
    await web.shoot(spec, "specialist-safety", whisper)

    await view.get_by_test_id("flag-level").select_option("high")
    await view.get_by_test_id("flag-note").fill("talking about a plan")
    await view.get_by_test_id("flag-button").focus()
    await spec.keyboard.press("Enter")

    async def flagged() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return bool(
                await conn.fetchval(
                    """SELECT count(*) FROM alerts
                        WHERE kind = 'flagged' AND level = 'high' AND conversation_id = $1""",
                    cid,
                )
            )
        finally:
            await conn.close()

    await wait_until(flagged, timeout=15)
    # The member's page never shows the whisper or the flag.
    await say(spec, "I'm here with you.", view)
    await expect(member.get_by_text("I'm here with you.")).to_be_visible()
    await expect(member.get_by_text(words)).to_have_count(0)
    await expect(member.get_by_text("talking about a plan")).to_have_count(0)
    await supervisor.close()
