"""The supervisor and specialist pages in two languages (issue 18): a browser that prefers Spanish gets the
page in Spanish; the switch in the header changes the language and the choice is
remembered over a reload, ahead of the browser's preference; a browser language we do not
have falls back to English."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import expect

from tests.browser.support import Web, put_profile
from tests.support.client import Client, token

pytestmark = pytest.mark.browser


async def test_languages_are_the_catalogue_files(web: Web) -> None:
    async with httpx.AsyncClient(base_url=web.base) as http:
        got = await http.get("/api/languages")
    assert got.status_code == 200
    assert got.json() == {"languages": ["en", "es"]}


async def test_the_spanish_page_shows_spanish_and_the_switch_is_remembered(web: Web) -> None:
    boss = await web.page("supervisor-es", locale="es-ES")
    await web.login_token(boss, "supervisor", "Lee", "sup-es")
    await expect(boss.locator("html")).to_have_attribute("lang", "es")
    await expect(boss.locator("#specialists-heading")).to_have_text("Especialistas")
    await expect(boss.locator("#audit-heading")).to_have_text("Registro de auditoría")
    await expect(boss.get_by_test_id("connection-status")).to_have_text("Conectado")
    await expect(boss.get_by_test_id("sign-out")).to_have_text("Cerrar sesión")
    await expect(boss.get_by_test_id("user-name")).to_have_text("Sesión iniciada como Lee")
    await expect(boss.get_by_test_id("audit-status")).to_have_text("Ninguna entrada coincide.")
    assert await boss.title() == "peerchat — panel de supervisión"
    switch = boss.get_by_test_id("language")
    await expect(switch).to_have_value("es")
    await expect(switch.locator("option")).to_have_text(["English", "Español"])
    await web.shoot(boss, "supervisor-es")

    # Switched to English: the page reloads in English, and stays so after another reload
    # although the browser still prefers Spanish.
    await switch.select_option("en")
    await expect(boss.locator("#specialists-heading")).to_have_text("Specialists")
    await expect(boss.locator("html")).to_have_attribute("lang", "en")
    await boss.reload()
    await expect(boss.get_by_test_id("connection-status")).to_have_text("Connected")
    await expect(boss.locator("#audit-heading")).to_have_text("Audit log")
    assert await boss.evaluate("() => localStorage.getItem('peerchat.lang')") == "en"


async def test_a_language_we_lack_falls_back_to_english(web: Web) -> None:
    boss = await web.page("supervisor-fr", locale="fr-FR")
    await web.login_token(boss, "supervisor", "Lee", "sup-fr")
    await expect(boss.locator("html")).to_have_attribute("lang", "en")
    await expect(boss.locator("#specialists-heading")).to_have_text("Specialists")
    await expect(boss.get_by_test_id("language")).to_have_value("en")


async def test_the_specialist_page_in_spanish_with_an_offer_and_a_chat(web: Web) -> None:
    await put_profile(web.live, "spec-es", "Ana", ["grief"])
    spec = await web.page("specialist-es", locale="es-MX")
    await web.login_token(spec, "specialist", "Ana", "spec-es")
    await expect(spec.locator("html")).to_have_attribute("lang", "es")
    await expect(spec.locator("#offers-heading")).to_contain_text("Ofertas")
    await expect(spec.get_by_test_id("availability-status")).to_have_text("Ausente")
    await spec.get_by_test_id("availability-toggle").click()
    await expect(spec.get_by_test_id("availability-status")).to_have_text("Disponible")
    member, _ = await Client.connect(web.live.ws, token("member", "acct-es", "Sam"))
    await member.call({"type": "request", "tags": ["grief"]}, "queued")
    offer = spec.get_by_test_id("offer")
    await expect(offer.get_by_test_id("offer-accept")).to_have_text("Aceptar")
    await expect(offer.get_by_test_id("offer-countdown")).to_contain_text("Caduca en")
    await offer.get_by_test_id("offer-accept").click()
    await expect(spec.get_by_test_id("chat-title")).to_have_text("Chat con Sam")
    await expect(spec.get_by_test_id("send-button")).to_have_text("Enviar")
    await expect(spec.get_by_test_id("end-button")).to_have_text("Terminar chat")
    await spec.get_by_test_id("composer-input").fill("Hola, Sam.")
    await spec.get_by_test_id("composer-input").press("Enter")
    await expect(spec.get_by_test_id("receipt")).to_have_text("Enviado")
    await web.shoot(spec, "specialist-es", show=spec.get_by_test_id("chats-panel"))
    await member.close()
