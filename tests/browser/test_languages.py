"""The supervisor and specialist pages in two languages (issue 18): a browser that prefers Spanish gets the
page in Spanish; the switch in the header changes the language and the choice is
remembered over a reload, ahead of the browser's preference; a browser language we do not
have falls back to English."""

from __future__ import annotations

from collections.abc import Callable

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


async def test_the_member_page_in_spanish_asks_chats_and_remembers_the_switch(web: Web) -> None:
    await put_profile(web.live, "spec-mes", "Rosa", ["grief"])
    rosa, _ = await Client.connect(web.live.ws, token("specialist", "spec-mes", "Rosa"))
    await rosa.call({"type": "availability", "status": "available"}, "availability")

    page = await web.page("member-es", locale="es-ES")
    await web.login_token(page, "member", "Sam", "acct-mes")
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await expect(page.locator("#start-heading")).to_have_text("Habla con un compañero")
    await expect(page.get_by_test_id("crisis-button")).to_have_text("¿Necesitas ayuda ya?")
    await expect(page.get_by_test_id("connection-status")).to_have_text("Conectado")
    await expect(page.get_by_test_id("user-name")).to_have_text("Sesión iniciada como Sam")
    await expect(page.get_by_test_id("request-button")).to_have_text("Pedir un compañero")
    await expect(page.get_by_label("Duelo y pérdida")).to_have_count(1)
    await expect(page.locator("#my-data-heading")).to_have_text("Tus datos")
    # The resources come from the operator's configuration (in its words); the call links are ours.
    await expect(page.get_by_test_id("crisis-resource").first).to_contain_text("Llamar al 988")
    assert await page.title() == "peerchat — habla con un compañero"
    switch = page.get_by_test_id("language")
    await expect(switch).to_have_value("es")
    await expect(switch.locator("option")).to_have_text(["English", "Español"])
    await web.shoot(page, "member-es")

    # Asking, waiting and chatting all work in Spanish.
    await page.get_by_test_id("tag-grief").check()
    await page.get_by_test_id("request-button").click()
    offer = await rosa.expect("offer", timeout=30)
    await expect(page.locator("#queue-heading")).to_have_text("Esperando a un compañero")
    await expect(page.get_by_test_id("queue-topics")).to_have_text("Temas: Duelo y pérdida")
    started = await rosa.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    cid = started["conversation"]["id"]
    await expect(page.get_by_test_id("notice")).to_have_text(
        "Rosa se ha unido. Ya puedes empezar a escribir."
    )
    await expect(page.get_by_test_id("send-button")).to_have_text("Enviar")
    await page.get_by_test_id("composer-input").fill("Hola, Rosa.")
    await page.get_by_test_id("composer-input").press("Enter")
    got = await rosa.expect("message", timeout=30)
    assert got["body"] == "Hola, Rosa."
    await expect(page.get_by_test_id("receipt")).to_have_text("Enviado")
    await rosa.call({"type": "end", "conversation_id": cid}, "conversation_ended")
    await expect(page.locator("#rating-heading")).to_have_text("¿Qué tal fue la conversación?")
    await expect(page.get_by_test_id("rating-submit")).to_have_text("Enviar opinión")

    # Switched to English: reloads in English and stays English after another reload.
    await switch.select_option("en")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#rating-heading")).to_have_text("How was this conversation?")
    await page.reload()
    await expect(page.get_by_test_id("connection-status")).to_have_text("Connected")
    await expect(page.get_by_test_id("crisis-button")).to_have_text("Need help now?")
    assert await page.evaluate("() => localStorage.getItem('peerchat.lang')") == "en"
    await rosa.close()


async def test_the_login_page_in_spanish(web: Web) -> None:
    page = await web.page("login-es", locale="es-AR")
    await page.goto("/login?role=member&why=expired")
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await expect(page.locator("h1")).to_have_text("Acceso de desarrollo")
    await expect(page.get_by_test_id("login-notice")).to_have_text(
        "Tu sesión terminó o se rechazó el token. Vuelve a entrar, por favor."
    )
    await expect(page.get_by_test_id("language")).to_have_value("es")
    await page.get_by_label("Nombre visible").fill("Sam")
    await page.get_by_label("Identificador de usuario (opcional)").fill("acct-login-es")
    await page.get_by_test_id("login-submit").click()
    await page.wait_for_url(f"{web.base}/member")
    await expect(page.locator("#start-heading")).to_have_text("Habla con un compañero")


async def test_a_preferred_peer_who_cannot_join_is_told_plainly_in_spanish(webs: Callable[..., Web]) -> None:
    web = webs(PEERCHAT_PREFER_WINDOW_S="2")
    await put_profile(web.live, "spec-rosa-es", "Rosa", ["grief"])
    await put_profile(web.live, "spec-omar-es", "Omar", ["grief"])
    # A first conversation with Rosa makes her a past peer of this member.
    rosa, _ = await Client.connect(web.live.ws, token("specialist", "spec-rosa-es", "Rosa"))
    await rosa.call({"type": "availability", "status": "available"}, "availability")
    sam, _ = await Client.connect(web.live.ws, token("member", "acct-pref-es", "Sam"))
    await sam.call({"type": "request", "tags": ["grief"]}, "queued")
    offer = await rosa.expect("offer", timeout=30)
    started = await rosa.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    await sam.call({"type": "end", "conversation_id": started["conversation"]["id"]}, "conversation_ended")
    await sam.close()
    await rosa.call({"type": "availability", "status": "away"}, "availability")
    omar, _ = await Client.connect(web.live.ws, token("specialist", "spec-omar-es", "Omar"))
    await omar.call({"type": "availability", "status": "available"}, "availability")

    page = await web.page("member-es-preferred", locale="es-ES")
    await web.login_token(page, "member", "Sam", "acct-pref-es")
    await expect(page.locator("#past-peers-heading")).to_have_text("Compañeros con los que has hablado")
    await page.get_by_role("button", name="Pedir de nuevo a Rosa").click()
    await expect(page.get_by_test_id("preferred-peer")).to_contain_text(
        "Pedirás de nuevo a Rosa. Si no puede unirse pronto, lo hará otro compañero."
    )
    await page.get_by_test_id("tag-grief").check()
    await page.get_by_test_id("request-button").click()
    await expect(page.locator("#queue-heading")).to_have_text("Esperando a un compañero")
    await omar.expect("offer", timeout=30)  # after Rosa's window, the next free peer
    await expect(page.get_by_test_id("notice")).to_have_text(
        "El compañero que pediste no pudo unirse a tiempo, así que hablarás con el siguiente que esté libre."
        " No pierdes tu lugar en la fila.",
        timeout=15000,
    )
    await omar.close()
    await rosa.close()
