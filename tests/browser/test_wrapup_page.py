"""The wrap-up form on the specialist console in a real browser (PRODUCT.md §8,
docs/safety.md): shown when a chat ends, with a countdown to `wrap_up_until`; saved from the
keyboard; after a high-risk chat it says plainly that the wrap-up cannot end early yet."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis
from playwright.async_api import expect

from tests.browser.support import Web, ask, chat, conversation_id, put_profile, say, tab
from tests.support.servers import LiveService, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
async def live(service_factory: Any, redis_client: redis.Redis) -> LiveService:
    """Wrap-up long enough to watch its countdown (the test default is a millisecond)."""
    return service_factory(PEERCHAT_WRAP_UP_S="60", PEERCHAT_WRAP_UP_URGENT_S="600")  # type: ignore[no-any-return]


async def test_wrap_up_form_with_countdown_after_a_high_risk_chat(web: Web, database_url: str) -> None:
    await put_profile(web.live, "spec-wrap", "Ana", ["grief"])
    spec = await web.page("specialist")
    await web.login_token(spec, "specialist", "Ana", "spec-wrap")
    await spec.get_by_role("switch").click()
    member = await web.page("member")
    await web.login_token(member, "member", "Sam", "member-wrap")
    await ask(member, "grief")
    await expect(spec.get_by_test_id("offer")).to_have_count(1)
    await spec.get_by_test_id("offer-accept").click()
    cid = await conversation_id(member)
    # A risk phrase makes the conversation high-risk: its wrap-up is the urgent length.
    await say(member, "some days I want to k\u200bill myself")
    await expect(spec.locator("li", has=tab(spec, cid)).get_by_test_id("risk-mark")).to_have_text("risk")

    view = chat(spec, cid)
    await expect(view.get_by_test_id("wrap-up")).to_have_count(0)
    await view.get_by_test_id("end-button").click()
    await view.get_by_test_id("end-confirm").click()

    form = view.get_by_test_id("wrap-up")
    await expect(form).to_be_visible()
    countdown = form.get_by_test_id("wrap-countdown")
    await expect(countdown).to_contain_text("s left", timeout=15_000)
    first = await countdown.inner_text()
    await expect(countdown).not_to_have_text(first, timeout=15_000)  # it counts down

    # Every field is labelled; the form is saved with Enter on its button.
    await form.get_by_label("Outcome").fill("talked it through, made a safety plan")
    await form.get_by_label("Risk level").select_option("high")
    await form.get_by_label("Note for the record (optional)").fill("follow up tomorrow")
    await web.shoot(spec, "specialist-wrap-up", form)
    await form.get_by_test_id("wrap-save").focus()
    await spec.keyboard.press("Enter")

    await expect(form.get_by_test_id("wrap-saved")).to_have_text("Wrap-up saved.")
    held = form.get_by_test_id("wrap-held")
    await expect(held).to_be_visible()
    await expect(held).to_contain_text("cannot end early yet")
    await expect(countdown).to_contain_text("s left")

    async def saved() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            row = await conn.fetchrow(
                "SELECT outcome, risk_level, note FROM wrap_ups WHERE conversation_id = $1", cid
            )
            return row is not None and tuple(row) == (
                "talked it through, made a safety plan",
                "high",
                "follow up tomorrow",
            )
        finally:
            await conn.close()

    await wait_until(saved, timeout=15)
    await web.shoot(spec, "specialist-wrap-up-held", form)
    # The member never sees the wrap-up.
    await expect(member.get_by_text("follow up tomorrow")).to_have_count(0)
