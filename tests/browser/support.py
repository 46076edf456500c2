"""The browser-test harness: contexts that watch themselves, sign-in helpers, screenshots and
the accessibility and layout checks every captured page goes through.

Each page opened through `Web.page()` records, for the whole test:
- every response from the service, with its Content-Security-Policy header;
- every CSP violation (a `securitypolicyviolation` listener installed before any page script,
  reporting through a Playwright binding, and Chromium's own console report);
- uncaught script errors, console errors and any dialog (`alert`/`confirm`/`prompt`);
- every URL the page navigated to, requested, or opened a WebSocket to, so that
  `assert_clean()` can prove no token ever travelled in a URL."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Response,
    expect,
)

from chat.web.security_headers import csp_for
from tests.support.client import Client, token
from tests.support.servers import LiveService

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
# Every run saves its screenshots under test-artifacts/ (git-ignored, so `make test` leaves
# the tree clean); PEERCHAT_UPDATE_SCREENSHOTS=1 writes them to docs/screenshots/, which the
# README shows, instead.
_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = (
    _ROOT / "docs" / "screenshots"
    if os.environ.get("PEERCHAT_UPDATE_SCREENSHOTS") == "1"
    else _ROOT / "test-artifacts" / "screenshots"
)
SUPERVISOR_TOKEN = token("supervisor", "sup-browser", "Lee")
# axe-core from the npm registry (package.json / package-lock.json, installed by `make`).
AXE_SCRIPT = _ROOT / "node_modules" / "axe-core" / "axe.min.js"
# What fails a test: axe's two worst impact levels (moderate and minor are reported by axe
# but are judgement calls, e.g. "all content in landmarks").
AXE_FAILING = ("serious", "critical")

# Before any page script: report CSP violations to Python through a binding (a binding is a
# DevTools-level function, so the CSP itself cannot block the report).
_WATCH_SCRIPT = """
document.addEventListener('securitypolicyviolation', (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__peerchatCsp(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${where}`);
});
"""

# Roles of controls a person operates; each must carry an accessible name.
CONTROL_ROLES = {
    "button",
    "checkbox",
    "combobox",
    "link",
    "listbox",
    "radio",
    "searchbox",
    "slider",
    "spinbutton",
    "switch",
    "tab",
    "textbox",
}

# While a modal <dialog> is open the rest of the page is inert (out of the accessibility
# tree and out of reach), so only the dialog's own controls count.
_VISIBLE_CONTROLS = """
() => [...(document.querySelector('dialog:modal') || document)
    .querySelectorAll('a[href], button, input, select, textarea')]
  .filter((el) => el.checkVisibility() && el.type !== 'hidden')
  .map((el) => el.dataset.testid || el.id || el.tagName.toLowerCase())
"""


@dataclass
class Watched:
    label: str
    # Set by a test that provokes violations on purpose (to prove the watcher sees them).
    violations_expected: bool = False
    csp_violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    # (url, content-security-policy header or None) of every response from the service
    responses: list[tuple[str, str | None]] = field(default_factory=list)


class Web:
    """Browser contexts against one live service. Close with `close()`, then `assert_clean()`."""

    def __init__(self, live: LiveService, browser: Browser) -> None:
        self.live = live
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.watched: list[Watched] = []
        self.tokens: set[str] = set()

    @property
    def base(self) -> str:
        return self.live.http

    async def page(self, label: str, viewport: dict[str, int] | None = None, locale: str = "en-US") -> Page:
        """A new browser context (its own sessionStorage: a separate person) with one page."""
        vp = viewport or DESKTOP
        context = await self.browser.new_context(
            viewport={"width": vp["width"], "height": vp["height"]},
            base_url=self.base,
            locale=locale,
            timezone_id="UTC",
            reduced_motion="reduce",
        )
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        w = Watched(label)
        self.watched.append(w)
        await context.expose_function("__peerchatCsp", lambda text: w.csp_violations.append(str(text)))
        await context.add_init_script(_WATCH_SCRIPT)
        page = await context.new_page()

        def on_console(msg: ConsoleMessage) -> None:
            text = msg.text
            if "Content Security Policy" in text or "Content-Security-Policy" in text:
                w.csp_violations.append(text)
            elif msg.type == "error":
                w.errors.append(f"console: {text}")

        async def on_dialog(dialog: Dialog) -> None:
            w.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        page.on("console", on_console)
        page.on("pageerror", lambda exc: w.errors.append(f"pageerror: {exc}"))
        page.on("dialog", on_dialog)
        page.on("request", lambda r: w.urls.append(r.url))
        page.on("websocket", lambda ws: w.urls.append(ws.url))
        page.on("framenavigated", lambda f: w.urls.append(f.url))

        def on_response(r: Response) -> None:
            if not r.url.startswith(self.base):
                return
            w.responses.append((r.url, r.headers.get("content-security-policy")))
            if r.status >= 400:
                w.errors.append(f"HTTP {r.status} for {r.url}")

        page.on("response", on_response)
        return page

    # ------------------------------------------------------------ signing in

    async def login_ui(self, page: Page, role: str, name: str, sub: str, *, shot: str | None = None) -> None:
        """Sign in through the real /login form, as a person would."""
        await page.goto(f"/login?role={role}")
        await expect(page.get_by_test_id(f"login-role-{role}")).to_be_checked()
        await page.get_by_label("Display name").fill(name)
        await page.get_by_label("User id (optional)").fill(sub)
        if shot:
            await self.shoot(page, shot)
        await page.get_by_test_id("login-submit").click()
        await page.wait_for_url(f"{self.base}/{role}")
        await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
        await assert_axe_clean(page, f"{role} page, signed in through /login")
        tok = await page.evaluate("(k) => sessionStorage.getItem(k)", f"peerchat.token.{role}")
        assert isinstance(tok, str) and tok.count(".") == 2, "the login page stored no JWT"
        self.tokens.add(tok)

    async def login_token(self, page: Page, role: str, name: str, sub: str) -> None:
        """Sign in without the form: a token from /dev/token put straight into sessionStorage."""
        async with httpx.AsyncClient(base_url=self.base) as http:
            r = await http.post("/dev/token", json={"role": role, "name": name, "sub": sub})
            r.raise_for_status()
            tok = r.json()["token"]
        self.tokens.add(tok)
        await page.goto("/login")
        await page.evaluate("([k, v]) => sessionStorage.setItem(k, v)", [f"peerchat.token.{role}", tok])
        await page.goto(f"/{role}")
        await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
        await assert_axe_clean(page, f"{role} page, signed in")

    # ------------------------------------------------------------ screenshots and checks

    async def shoot(self, page: Page, name: str, show: Locator | None = None) -> None:
        """Save <SCREENSHOTS>/<name>-1280.png and <name>-375.png (the viewport only, with
        `show` scrolled into it). At both widths the page must not scroll sideways, and every
        visible control must have an accessible name."""
        original = page.viewport_size
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for size in (DESKTOP, PHONE):
            await page.set_viewport_size({"width": size["width"], "height": size["height"]})
            if show is not None:
                await show.scroll_into_view_if_needed()
            await page.evaluate(
                "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
            )
            await page.screenshot(
                path=SCREENSHOTS / f"{name}-{size['width']}.png", animations="disabled", caret="hide"
            )
            await assert_no_horizontal_overflow(page, name)
            await assert_axe_clean(page, f"{name} at {size['width']} px")
        if original is not None:
            await page.set_viewport_size(original)
        await assert_controls_named(page)

    # ------------------------------------------------------------ the end

    async def close(self) -> None:
        """Every page as the test left it goes through axe-core too, then is closed."""
        failures: list[str] = []
        for context, w in zip(self.contexts, self.watched, strict=False):
            for page in context.pages:
                if page.is_closed() or not page.url.startswith(self.base) or w.violations_expected:
                    continue
                try:
                    await assert_axe_clean(page, f"{w.label} as the test left it")
                except AssertionError as exc:
                    failures.append(str(exc))
        for context in self.contexts:
            await context.close()
        self.contexts.clear()
        assert not failures, "\n".join(failures)

    def assert_clean(self) -> None:
        violations = [
            f"{w.label}: {v}" for w in self.watched if not w.violations_expected for v in w.csp_violations
        ]
        assert not violations, f"CSP violations: {violations}"
        errors = [f"{w.label}: {e}" for w in self.watched for e in w.errors]
        assert not errors, f"script or console errors: {errors}"
        dialogs = [f"{w.label}: {d}" for w in self.watched for d in w.dialogs]
        assert not dialogs, f"dialogs opened: {dialogs}"
        for w in self.watched:
            assert w.responses, f"{w.label}: no response from the service was seen"
            missing = [url for url, csp in w.responses if csp != csp_for(urlsplit(url).netloc)]
            assert not missing, f"{w.label}: responses without the CSP header: {missing}"
            for url in w.urls:
                # A JWT starts with the base64 of '{"', which is 'eyJ'.
                assert "eyJ" not in url, f"{w.label}: a token-like string in a URL: {url}"
                for tok in self.tokens:
                    assert tok not in url and tok.split(".")[2] not in url, f"{w.label}: token in URL {url}"


async def assert_no_horizontal_overflow(page: Page, where: str) -> None:
    sizes: dict[str, Any] = await page.evaluate(
        """() => ({
            doc: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
            body: [document.body.scrollWidth, document.body.clientWidth],
            viewport: window.innerWidth,
            // The outermost elements that stick out on the right, to say what to fix.
            culprits: [...document.body.querySelectorAll('*')]
                .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
                .filter((el) => {
                    // Only what the page itself scrolls for: skip what a scroll box clips
                    // (an absolutely positioned element escapes a non-positioned one).
                    if (getComputedStyle(el).position === 'absolute') return true;
                    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
                        if (getComputedStyle(p).overflowX !== 'visible') return false;
                    }
                    return true;
                })
                .slice(0, 5)
                .map((el) => `${el.tagName.toLowerCase()}.${el.className}[${el.dataset.testid || el.id}]`
                             + ` right=${Math.round(el.getBoundingClientRect().right)}`),
        })"""
    )
    doc_scroll, doc_client = sizes["doc"]
    body_scroll, body_client = sizes["body"]
    assert doc_scroll <= doc_client, f"{where}: page scrolls sideways at {sizes['viewport']} px: {sizes}"
    assert body_scroll <= body_client, f"{where}: body overflows at {sizes['viewport']} px: {sizes}"


async def assert_axe_clean(page: Page, where: str) -> None:
    """axe-core on the page as it is now (injected from node_modules over DevTools, so the
    page's CSP does not apply to it): no serious or critical violation."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        source = await asyncio.to_thread(AXE_SCRIPT.read_text, encoding="utf-8")
        await page.evaluate(f"() => {{ {source}\n }}")
        assert await page.evaluate("() => typeof window.axe === 'object'"), "axe-core did not load"
    found: list[dict[str, Any]] = await page.evaluate(
        """async (failing) => {
            const r = await axe.run(document, { resultTypes: ['violations'] });
            return r.violations
                .filter((v) => failing.includes(v.impact))
                .map((v) => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 4).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
                }));
        }""",
        list(AXE_FAILING),
    )
    assert not found, f"{where} ({page.url}): axe-core found {found}"


async def assert_controls_named(page: Page) -> list[tuple[str, str]]:
    """Every control in Chromium's accessibility tree has a name, and every visible control
    on the page is in that tree. Returns (role, name) of the controls."""
    cdp = await page.context.new_cdp_session(page)
    try:
        tree = await cdp.send("Accessibility.getFullAXTree")
    finally:
        await cdp.detach()
    controls: list[tuple[str, str]] = []
    for node in tree["nodes"]:
        if node.get("ignored"):
            continue
        role = str(node.get("role", {}).get("value", ""))
        if role not in CONTROL_ROLES:
            continue
        name = str(node.get("name", {}).get("value", "")).strip()
        assert name, f"{page.url}: a {role} without an accessible name: {node}"
        controls.append((role, name))
    visible: list[str] = await page.evaluate(_VISIBLE_CONTROLS)
    assert len(controls) >= len(visible), (
        f"{page.url}: {len(visible)} visible controls but {len(controls)} named in the accessibility tree: "
        f"{visible} vs {controls}"
    )
    return controls


async def put_profile(
    live: LiveService, sid: str, name: str, tags: list[str], languages: list[str] | None = None
) -> None:
    """A specialist profile, set by a supervisor over HTTP (PRODUCT.md §6)."""
    async with httpx.AsyncClient(base_url=live.http) as http:
        r = await http.put(
            f"/api/specialists/{sid}",
            headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"},
            json={"name": name, "tags": tags, "languages": languages or ["en"], "max_chats": 3},
        )
        assert r.status_code == 200, r.text


async def feedback_rows(database_url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT conversation_id, member_id, rating, comment FROM feedback")
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def start_recording(page: Page, testids: list[str]) -> None:
    """Record every distinct text each element shows from now on (a MutationObserver), so a
    test can assert what a person watching the page saw, in order, not only the end state."""
    await page.evaluate(
        """(ids) => {
            window.__seen = {};
            for (const id of ids) {
                const el = document.querySelector(`[data-testid="${id}"]`);
                const seen = (window.__seen[id] = []);
                const record = () => {
                    const v = el.textContent.trim();
                    if (seen[seen.length - 1] !== v) seen.push(v);
                };
                record();
                const what = { childList: true, characterData: true, subtree: true };
                new MutationObserver(record).observe(el, what);
            }
        }""",
        testids,
    )


async def recorded(page: Page, testid: str) -> list[str]:
    seen: list[str] = await page.evaluate("(id) => window.__seen[id]", testid)
    placeholder = "\u2013"  # the en dash a tile shows before its first value
    return [v for v in seen if v not in ("", placeholder)]


# A member asks, a specialist answers: the steps most page tests share.


async def ask(member: Page, tag: str, note: str = "") -> None:
    await member.get_by_test_id(f"tag-{tag}").check()
    if note:
        await member.get_by_test_id("note-input").fill(note)
    await member.get_by_test_id("request-button").click()
    await expect(member.get_by_test_id("queue-view")).to_be_visible()


async def conversation_id(member: Page) -> str:
    chat = member.get_by_test_id("chat")
    await expect(chat).to_have_count(1)
    cid = await chat.get_attribute("data-conversation-id")
    assert cid
    return cid


def tab(spec: Page, cid: str) -> Locator:
    return spec.locator(f'[data-testid="chat-tab"][data-conversation-id="{cid}"]')


def chat(spec: Page, cid: str) -> Locator:
    return spec.locator(f'[data-testid="chat"][data-conversation-id="{cid}"]')


async def say(page: Page, text: str, where: Locator | None = None) -> None:
    box = (where or page).get_by_test_id("composer-input")
    await box.fill(text)
    await box.press("Enter")


async def conversation_with(live: LiveService, bodies: list[tuple[str, str]]) -> str:
    """A finished conversation made over the protocol: `bodies` are (role, text) in order."""
    await put_profile(live, "spec-tr", "Ana", ["grief"])
    spec, _ = await Client.connect(live.ws, token("specialist", "spec-tr", "Ana"))
    member, _ = await Client.connect(live.ws, token("member", "member-tr", "Sam"))
    try:
        queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
        started = await spec.call(
            {"type": "claim", "request_id": queued["request_id"]}, "conversation_started"
        )
        cid: str = started["conversation"]["id"]
        await member.expect("conversation_started")
        side = {"member": member, "specialist": spec}
        for n, (role, body) in enumerate(bodies):
            frame = {"type": "send", "conversation_id": cid, "client_msg_id": f"m{n}", "body": body}
            ack = await side[role].call(frame, "ack")
            assert ack["seq"] == n + 1, ack
        await member.call({"type": "end", "conversation_id": cid}, "conversation_ended")
        return cid
    finally:
        await spec.close()
        await member.close()


# Keyboard reach: what has focus, and Tab until something does.


async def focused(page: Page) -> str:
    """The focused element's data-testid (or id, or tag)."""
    found: str = await page.evaluate(
        "() => { const e = document.activeElement; return e ? (e.dataset.testid || e.id || e.tagName) : ''; }"
    )
    return found


async def tab_to(page: Page, testid: str, *, back: bool = False, limit: int = 40) -> None:
    """Press Tab (or Shift+Tab) until `testid` has focus: it is reachable by keyboard."""
    visited = []
    for _ in range(limit):
        await page.keyboard.press("Shift+Tab" if back else "Tab")
        now = await focused(page)
        if now == testid:
            return
        visited.append(now)
    raise AssertionError(f"{testid} not reached by {'Shift+Tab' if back else 'Tab'}; focus went {visited}")
