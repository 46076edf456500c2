"""The page-level security promises of docs/web.md, checked in the browser: every page comes
with the strict CSP and Chromium enforces it (an injected inline script is blocked and
reported, which also proves the violation watcher the other tests rely on can see one); a
refused token sends the page back to /login without the token in any URL."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import expect

from chat.web.security_headers import csp_for
from tests.browser.support import Web
from tests.support.servers import wait_until

pytestmark = pytest.mark.browser

PAGES = ["/login", "/member", "/specialist", "/supervisor"]


async def test_every_page_sends_the_csp_and_the_browser_enforces_it(web: Web) -> None:
    page = await web.page("visitor")
    for path in PAGES:
        response = await page.goto(path)
        assert response is not None and response.ok, path
        headers = await response.all_headers()
        csp = headers["content-security-policy"]
        assert csp == csp_for(urlsplit(web.base).netloc), path
        # Sockets may go to this origin only, not to any host (`ws: wss:` allowed that).
        assert "ws: " not in csp and "wss: " not in csp and f"ws://{urlsplit(web.base).netloc}" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
    # Role pages without a token go to the login page, with the role and nothing else.
    assert page.url == f"{web.base}/login?role=supervisor"

    web.watched[0].violations_expected = True
    # Script put into the page by other means than a file of ours does not run.
    ran = await page.evaluate(
        """() => new Promise((resolve) => {
            const s = document.createElement('script');
            s.textContent = 'window.__inline = 1';
            document.body.append(s);
            const b = document.createElement('button');
            b.setAttribute('onclick', 'window.__inline = 2');
            document.body.append(b);
            b.click();
            setTimeout(() => resolve(window.__inline ?? null), 200);
        })"""
    )
    assert ran is None
    await wait_until(lambda: len(web.watched[0].csp_violations) >= 2, timeout=5)
    reported = " ".join(web.watched[0].csp_violations)
    assert "script-src-elem" in reported and "script-src-attr" in reported, reported


async def test_a_refused_token_returns_to_login_without_leaking_it(web: Web) -> None:
    page = await web.page("member")
    await web.login_token(page, "member", "Sam", "member-expired")
    # A token signed with another key: the server closes the socket with 4001.
    forged = await page.evaluate("() => sessionStorage.getItem('peerchat.token.member')")
    header, payload, _signature = str(forged).split(".")
    bad = f"{header}.{payload}.{'A' * 43}"
    web.tokens.add(bad)
    await page.evaluate("(t) => sessionStorage.setItem('peerchat.token.member', t)", bad)
    await page.reload()
    await page.wait_for_url(f"{web.base}/login?role=member&why=expired")
    await expect(page.get_by_test_id("login-notice")).to_contain_text("sign in again")
    assert await page.evaluate("() => sessionStorage.getItem('peerchat.token.member')") is None
