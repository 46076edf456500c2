"""The pages and a token's end (PRODUCT.md §4), in the browser: a page that can get a fresh
token (the dev login it remembers) sends `reauth` before `exp` and never drops its socket;
one that cannot (a portal sign-in) is closed 4001 at `exp` and says plainly that the
sign-in ended, in place, with the token gone from storage."""

from __future__ import annotations

import json
import time

import pytest
from playwright.async_api import Page, expect

from tests.browser.support import Web, recorded, start_recording
from tests.support.client import token
from tests.support.servers import wait_until

pytestmark = pytest.mark.browser


async def _open_with(web: Web, page: Page, tok: str, login: dict[str, str] | None) -> None:
    web.tokens.add(tok)
    await page.goto("/login")
    await page.evaluate(
        """([t, l]) => {
            sessionStorage.setItem('peerchat.token.member', t);
            if (l) sessionStorage.setItem('peerchat.login.member', l);
        }""",
        [tok, json.dumps(login) if login else None],
    )
    await page.goto("/member")
    await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")


async def _stored(page: Page) -> str | None:
    stored: str | None = await page.evaluate("() => sessionStorage.getItem('peerchat.token.member')")
    return stored


async def test_a_dev_page_reauths_before_exp_and_stays_connected(web: Web) -> None:
    page = await web.page("member")
    issued = time.time()
    short = token("member", "member-renew", "Sam", ttl_s=15, now=issued)
    await _open_with(web, page, short, {"name": "Sam", "sub": "member-renew"})
    await start_recording(page, ["connection-status"])

    async def renewed() -> bool:
        return await _stored(page) not in (None, short)

    await wait_until(renewed, timeout=30, every=0.5)
    # Well past the first token's exp: the socket it opened is still the page's socket.
    await wait_until(lambda: time.time() > int(issued) + 15 + 3, timeout=30, every=0.2)
    await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    assert await recorded(page, "connection-status") == ["Connected"], "never dropped, never reconnected"
    assert page.url == f"{web.base}/member"


async def test_a_portal_page_says_signed_out_at_exp(web: Web) -> None:
    page = await web.page("member")
    short = token("member", "member-portal", "Sam", ttl_s=5)
    await _open_with(web, page, short, None)
    notice = page.get_by_test_id("signed-out")
    await expect(notice).to_be_visible(timeout=20_000)
    await expect(notice).to_contain_text("signed out")
    assert page.url == f"{web.base}/member", "no login page of ours to send a portal user to"
    assert await _stored(page) is None
