"""chat/web/ratelimit.py in process, against the session's real Redis and against a Redis
that does not answer: who is counted, what is refused, and what happens without Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from chat.devservers import free_port
from chat.web.ratelimit import OTHER_PER_MINUTE, TRANSCRIPTS_PER_MINUTE, SupervisorRateLimit
from tests.support.client import SETTINGS, token

TRANSCRIPT = "/api/conversations/c1/messages"


def _app(client: redis.Redis) -> Starlette:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ran")

    app = Starlette(
        routes=[Route(TRANSCRIPT, ok), Route("/api/stats", ok)], middleware=[Middleware(SupervisorRateLimit)]
    )
    app.state.services = SimpleNamespace(settings=SETTINGS, redis=client)
    return app


@pytest.fixture
async def http(redis_client: redis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(redis_client))
    async with httpx.AsyncClient(transport=transport, base_url="http://peerchat") as client:
        yield client


def _as(role: str, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, sub)}"}


async def test_transcript_reads_stop_at_30_with_retry_after(http: httpx.AsyncClient) -> None:
    sup = _as("supervisor", "sup-a")
    for _ in range(TRANSCRIPTS_PER_MINUTE):
        assert (await http.get(TRANSCRIPT, headers=sup)).text == "ran"
    refused = await http.get(TRANSCRIPT, headers=sup)
    assert refused.status_code == 429 and refused.text != "ran"
    assert 55 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["retry_after_s"] == int(refused.headers["retry-after"])
    # A trailing slash is the same route, and the same bucket.
    assert (await http.get(TRANSCRIPT + "/", headers=sup)).status_code == 429
    assert (await http.get("/api/stats", headers=sup)).text == "ran"


async def test_only_valid_supervisor_tokens_are_counted(
    http: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    for headers in (
        _as("member", "sup-a"),
        _as("specialist", "sup-a"),
        {"Authorization": "Bearer not.a.token"},
        {"Authorization": "Basic c3VwOnB3"},
        {},
    ):
        for _ in range(TRANSCRIPTS_PER_MINUTE + 1):
            assert (await http.get(TRANSCRIPT, headers=headers)).text == "ran"
    assert [k async for k in redis_client.scan_iter(match="peerchat:ratelimit:*")] == []


async def test_other_routes_allow_300_a_minute(http: httpx.AsyncClient) -> None:
    sup = _as("supervisor", "sup-b")
    for _ in range(OTHER_PER_MINUTE):
        assert (await http.get("/api/stats", headers=sup)).text == "ran"
    assert (await http.get("/api/stats", headers=sup)).status_code == 429
    assert (await http.get("/api/stats", headers=_as("supervisor", "sup-c"))).text == "ran"


async def test_without_redis_transcripts_are_refused_and_the_rest_goes_on() -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    transport = httpx.ASGITransport(app=_app(dead))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://peerchat") as http:
            sup = _as("supervisor", "sup-d")
            assert (await http.get(TRANSCRIPT, headers=sup)).status_code == 503
            assert (await http.get("/api/stats", headers=sup)).text == "ran"
    finally:
        await dead.aclose()
