"""Blocks and reports on the supervisor dashboard in a real browser (PRODUCT.md §9): the
blocks in force and the members' reports, shown by alias with their text, and "Lift"."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.support import Web, put_profile
from tests.support.client import Client, token

pytestmark = pytest.mark.browser


async def test_supervisor_sees_blocks_and_reports_and_lifts_a_block(web: Web) -> None:
    await put_profile(web.live, "spec-bound", "Rosa", ["grief"])
    spec, _ = await Client.connect(web.live.ws, token("specialist", "spec-bound", "Rosa"))
    await spec.call({"type": "availability", "status": "available"}, "availability")
    convs = []
    for member_id, alias in (("acct-bound-1", "Quinn"), ("acct-bound-2", "Wren")):
        member, _ = await Client.connect(web.live.ws, token("member", member_id, alias))
        queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
        started = await spec.call(
            {"type": "claim", "request_id": queued["request_id"]}, "conversation_started"
        )
        cid = started["conversation"]["id"]
        await member.expect("conversation_started")
        convs.append((member, cid))
    (quinn, first), (wren, second) = convs
    blocked = await spec.call(
        {"type": "block", "conversation_id": first, "reason": "threats <b>not html</b>", "end": True},
        "blocked",
    )
    assert blocked["type"] == "blocked", blocked
    reported = await wren.call(
        {"type": "report", "conversation_id": second, "reason": "rude", "details": "Mocked what I said."},
        "reported",
    )
    assert reported["type"] == "reported", reported

    page = await web.page("supervisor")
    await web.login_token(page, "supervisor", "Dana", "sup-bound")
    panel = page.get_by_test_id("boundaries-panel")
    block = panel.get_by_test_id("block-row")
    await expect(block).to_have_count(1)
    await expect(block).to_contain_text("Rosa")
    await expect(block).to_contain_text("Quinn")
    await expect(block.get_by_test_id("block-reason")).to_have_text("threats <b>not html</b>")
    report = panel.get_by_test_id("report-row")
    await expect(report).to_have_count(1)
    await expect(report).to_contain_text("Wren")
    await expect(report.get_by_test_id("report-details")).to_have_text("Mocked what I said.")
    await expect(panel).not_to_contain_text("acct-bound")
    await web.shoot(page, "supervisor-blocks-and-reports", panel)

    await block.get_by_test_id("lift-block").click()
    await expect(panel.get_by_test_id("block-row")).to_have_count(0)
    await expect(panel.get_by_test_id("blocks-empty")).to_be_visible()
    await expect(panel.get_by_test_id("report-row")).to_have_count(1)
    for client in (spec, quinn, wren):
        await client.close()
    web.assert_clean()
