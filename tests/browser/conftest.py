"""Real Chromium for the browser tests: Debian's `chromium` package driven by Playwright.

Playwright's own browser download needs the open internet, which CI does not have, so the
tests launch `/usr/bin/chromium` (installed by `tests/browser/install-chromium.sh`, which
`make test` runs). Outside CI a missing Chromium skips these tests with the reason; under
`CI=true` it is an error, so CI can never pass without running them."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.support import Web
from tests.support.servers import LiveService

CHROMIUM = os.environ.get("PEERCHAT_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling Google's hosts, which this
# machine's closed network refuses (and CI's too).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


def _chromium_or_skip() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path:
        return path
    reason = f"Chromium not found at {CHROMIUM}: run `bash tests/browser/install-chromium.sh` (as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " — browser tests must run in CI")
    pytest.skip(reason)


@pytest.fixture
def service_command() -> str:
    """The pages are signed in to through the dev routes, which only `peerchat dev` serves."""
    return "dev"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    # One browser per test (about 1 s to start): a session-wide one would tie every test to
    # one event loop scope, and the `live` fixtures here are per test anyway.
    executable = _chromium_or_skip()
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def web(live: LiveService, browser: Browser) -> AsyncIterator[Web]:
    """Browser contexts against the live service. Every page is watched: CSP header on each
    document, no CSP violation, no script error, no dialog, no token in any URL. Closed
    (and checked) before the service stops."""
    harness = Web(live, browser)
    try:
        yield harness
    finally:
        await harness.close()
    harness.assert_clean()


@pytest.fixture
async def webs(
    service_factory: Callable[..., LiveService], browser: Browser
) -> AsyncIterator[Callable[..., Web]]:
    """Like `web`, for services started with environments of their own: `webs(**env)`. Each
    is closed and checked like `web` is."""
    made: list[Web] = []

    def start(**env: str) -> Web:
        harness = Web(service_factory(**env), browser)
        made.append(harness)
        return harness

    try:
        yield start
    finally:
        for harness in made:
            await harness.close()
    for harness in made:
        harness.assert_clean()
