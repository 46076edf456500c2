"""HTTP routes of chat/web/ that had no direct test, through httpx's ASGI transport against
a real PostgreSQL (presence in memory): GET /api/specialists/me, /api/crisis-resources and
/api/languages, including who may call them and what a bad configuration falls back to."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chat.config import Settings
from chat.presence_memory import MemoryPresence
from chat.store import profiles
from chat.tokens import Identity
from chat.web import crisis, languages, specialists
from chat.web.common import HttpRefusal
from chat.web.pages import STATIC
from tests.chat.conftest import Pool
from tests.support.client import bearer, token
from tests.support.servers import JWT_SECRET


@dataclass
class Admission:
    revoked: set[str] = field(default_factory=set)

    def refuses(self, identity: Identity) -> bool:
        return identity.user_id in self.revoked


@dataclass
class FakeServices:
    settings: Settings
    db: Pool
    presence: MemoryPresence = field(default_factory=lambda: MemoryPresence(30.0))
    admission: Admission = field(default_factory=Admission)


async def _refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpRefusal)
    return exc.response


def _app(services: FakeServices) -> Starlette:
    app = Starlette(
        routes=[
            Route("/api/specialists/me", specialists.my_profile, methods=["GET"]),
            Route("/api/crisis-resources", crisis.crisis_resources, methods=["GET"]),
            Route("/api/languages", languages.languages, methods=["GET"]),
        ],
        exception_handlers={HttpRefusal: _refusal},
    )
    app.state.services = services
    return app


def _settings(database_url: str, **kw: str) -> Settings:
    return Settings(database_url=database_url, redis_url="-", jwt_secret=JWT_SECRET, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def services(db: Pool, database_url: str) -> FakeServices:
    return FakeServices(_settings(database_url), db)


@pytest.fixture
async def http(services: FakeServices) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://chat.example") as client:
        yield client


async def test_my_profile_is_made_on_first_call_with_the_tokens_name(
    http: httpx.AsyncClient, services: FakeServices
) -> None:
    assert await profiles.get(services.db, "s1") is None
    r = await http.get("/api/specialists/me", headers=bearer(token("specialist", "s1", name="Ana")))
    assert r.status_code == 200
    body = r.json()
    assert (body["id"], body["name"], body["status"], body["active_chats"]) == ("s1", "Ana", "offline", 0)
    stored = await profiles.get(services.db, "s1")
    assert stored is not None and stored.name == "Ana"


async def test_my_profile_reports_online_and_keeps_an_edited_profile(
    http: httpx.AsyncClient, services: FakeServices
) -> None:
    await profiles.put(services.db, "s1", name="Ana R.", tags=["grief"], languages=["en", "es"], max_chats=2)
    await profiles.set_status(services.db, "s1", "available")
    await services.presence.connect("s1", "specialist", "c1", time.time())
    r = await http.get("/api/specialists/me", headers=bearer(token("specialist", "s1", name="Someone else")))
    body = r.json()
    assert (body["name"], body["tags"], body["languages"], body["max_chats"]) == (
        "Ana R.",
        ["grief"],
        ["en", "es"],
        2,
    )
    assert body["status"] == "available"


async def test_my_profile_is_for_specialists_with_a_valid_unrevoked_token(
    http: httpx.AsyncClient, services: FakeServices
) -> None:
    assert (await http.get("/api/specialists/me")).status_code == 401
    assert (await http.get("/api/specialists/me", headers={"Authorization": "Basic abc"})).status_code == 401
    expired = token("specialist", "s1", ttl_s=-60)
    assert (await http.get("/api/specialists/me", headers=bearer(expired))).status_code == 401
    r = await http.get("/api/specialists/me", headers=bearer(token("member", "m1")))
    assert r.status_code == 403 and "error" in r.json()
    services.admission.revoked.add("s2")
    assert (
        await http.get("/api/specialists/me", headers=bearer(token("specialist", "s2")))
    ).status_code == 401
    assert await profiles.get(services.db, "m1") is None, "a refused call stores nothing"
    assert await profiles.get(services.db, "s2") is None


async def test_crisis_resources_default_configured_and_malformed(db: Pool, database_url: str) -> None:
    configured = [{"name": "Local line", "contact": "555-0100", "description": "Nights."}]
    cases = [
        ("", crisis.DEFAULT_CRISIS_RESOURCES),
        (json.dumps(configured), configured),
        ("{not json", crisis.DEFAULT_CRISIS_RESOURCES),
    ]
    for raw, expected in cases:
        services = FakeServices(_settings(database_url, crisis_resources=raw), db)
        transport = httpx.ASGITransport(app=_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://chat.example") as client:
            r = await client.get("/api/crisis-resources")  # no sign-in: anyone in crisis may read it
        assert r.status_code == 200, raw
        assert r.json() == {"resources": expected}, raw


async def test_languages_lists_the_catalogues_english_first(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/languages")
    assert r.status_code == 200
    codes = r.json()["languages"]
    assert codes[0] == "en" and "es" in codes
    on_disk = {p.stem for p in (STATIC / "i18n").glob("*.js")}
    assert set(codes) <= on_disk
    assert r.headers["cache-control"] == "max-age=300"
