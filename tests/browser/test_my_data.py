"""The member page's "Your data" (PRODUCT.md §10), keyboard only: download a copy, open the
erasure's confirmation (which says what goes and what stays), back out with Escape, then
delete; the page says it is done and the database no longer names the member."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import expect

from tests.browser.support import Web, assert_controls_named, focused, tab_to
from tests.support.client import Client, token

pytestmark = pytest.mark.browser


async def test_a_member_downloads_then_deletes_their_data_with_the_keyboard(
    web: Web, database_url: str
) -> None:
    # Something to find: a request with a note, cancelled, from another device.
    device, _ = await Client.connect(web.live.ws, token("member", "member-mydata", "Ivy"))
    queued = await device.call({"type": "request", "tags": ["grief"], "note": "a note of mine"}, "queued")
    await device.call({"type": "cancel", "request_id": queued["request_id"]}, "cancelled")
    await device.close()

    member = await web.page("member")
    await web.login_token(member, "member", "Ivy", "member-mydata")
    kb = member.keyboard

    await tab_to(member, "download-data")
    async with member.expect_download() as waiting:
        await kb.press("Enter")
    download = await waiting.value
    assert download.suggested_filename == "peerchat-my-data.json"
    exported = json.loads(await asyncio.to_thread(Path(await download.path()).read_text))
    assert [r["note"] for r in exported["requests"]] == ["a note of mine"]
    assert exported["conversations"] == []
    await expect(member.get_by_test_id("my-data-status")).to_contain_text("downloaded")

    await tab_to(member, "delete-data")
    controls = await assert_controls_named(member)
    assert ("button", "Download my data") in controls and ("button", "Delete my data") in controls
    await kb.press("Enter")
    dialog = member.get_by_test_id("delete-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("every message you sent and every message sent to you")
    await expect(dialog).to_contain_text("What stays")
    await expect(member.get_by_test_id("delete-cancel")).to_be_focused()
    # The modal leaves only its own buttons reachable.
    await expect(member.get_by_role("button", name="Delete everything")).to_be_visible()
    await expect(member.get_by_role("button", name="Keep my data")).to_be_visible()
    await kb.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(member.get_by_test_id("delete-data")).to_be_focused()

    await kb.press("Enter")
    await expect(dialog).to_be_visible()
    await kb.press("Shift+Tab")
    assert await focused(member) == "delete-confirm"
    await kb.press("Enter")
    await expect(member.get_by_test_id("data-deleted")).to_be_visible()
    await expect(member.get_by_role("heading", name="Your data has been deleted")).to_be_focused()
    await web.shoot(member, "member-data-deleted")
    stored = await member.evaluate("() => sessionStorage.getItem('peerchat.token.member')")
    assert stored is None, "the page forgets the token of an erased member"

    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch("SELECT member_id, member_alias, note FROM requests")
        assert [tuple(r) for r in rows] == [("", "", None)]
        assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'erase'") == 1
    finally:
        await db.close()
