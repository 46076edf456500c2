"""The HTTP surface (PRODUCT.md §6): health, metrics, profiles, stats, transcripts, audit."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from chat import dispatch, views
from chat.metrics import METRICS
from chat.people import Person
from chat.services import Services
from chat.store import audit, conversations, profiles
from chat.store.db import iso
from chat.tokens import Identity, Role, TokenRejected, mint, verify

MAX_TAGS = 20


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class HttpRefusal(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _auth(request: Request, *roles: str) -> Identity:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HttpRefusal(_problem(401, "a bearer token is required"))
    try:
        identity = verify(token.strip(), _services(request).settings)
    except TokenRejected:
        raise HttpRefusal(_problem(401, "the token was refused")) from None
    if roles and identity.role not in roles:
        raise HttpRefusal(_problem(403, "your role may not do this"))
    return identity


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    services = _services(request)
    problems = []
    try:
        await asyncio.wait_for(services.db.fetchval("SELECT 1"), 2)
    except Exception:
        problems.append("postgresql")
    try:
        await asyncio.wait_for(services.redis.ping(), 2)
    except Exception:
        problems.append("redis")
    if services.draining:
        problems.append("draining")
    if problems:
        return JSONResponse({"ready": False, "unavailable": problems}, status_code=503)
    return JSONResponse({"ready": True})


async def metrics(request: Request) -> Response:
    METRICS.sockets_live.set(len(_services(request).hub.all_sessions()))
    METRICS.bus_down.set(0 if _services(request).bus.healthy else 1)
    return Response(generate_latest(METRICS.registry), media_type=CONTENT_TYPE_LATEST)


def _profile_json(p: profiles.Profile, online: set[str]) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "tags": p.tags,
        "languages": p.languages,
        "max_chats": p.max_chats,
        "status": p.status if p.id in online else "offline",
        "active_chats": p.active_chats,
    }


async def list_specialists(request: Request) -> Response:
    _auth(request, "supervisor")
    services = _services(request)
    online = await services.presence.online_specialists(time.time())
    return JSONResponse([_profile_json(p, online) for p in await profiles.list_all(services.db)])


async def my_profile(request: Request) -> Response:
    identity = _auth(request, "specialist")
    services = _services(request)
    profile = await profiles.ensure(services.db, identity.user_id, identity.name)
    online = await services.presence.online_specialists(time.time())
    return JSONResponse(_profile_json(profile, online))


class ProfileEdit(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    tags: list[str]
    languages: list[str]
    max_chats: int


def _has_nul(*texts: str) -> bool:
    """PostgreSQL text cannot hold NUL: refuse it up front, not with a 500 from the driver."""
    return any("\x00" in t for t in texts)


def _clean(words: list[str], limit: int) -> list[str]:
    return sorted({w.strip().lower() for w in words if w.strip()})[:limit]


async def put_specialist(request: Request) -> Response:
    _auth(request, "supervisor")
    specialist_id = request.path_params["specialist_id"]
    if not 0 < len(specialist_id) <= 64:
        return _problem(400, "bad specialist id")
    try:
        edit = msgspec.json.decode(await request.body(), type=ProfileEdit)
    except msgspec.DecodeError as exc:
        return _problem(400, f"bad profile: {exc}")
    if _has_nul(specialist_id, edit.name, *edit.tags, *edit.languages):
        return _problem(400, "text may not contain NUL characters")
    name = edit.name.strip()
    languages = _clean(edit.languages, 10)
    if not name or len(name) > 64:
        return _problem(400, "name must be 1 to 64 characters")
    if not languages:
        return _problem(400, "at least one language")
    if not 1 <= edit.max_chats <= 20:
        return _problem(400, "max_chats must be between 1 and 20")
    services = _services(request)
    profile = await profiles.put(
        services.db,
        specialist_id,
        name=name,
        tags=_clean(edit.tags, MAX_TAGS),
        languages=languages,
        max_chats=edit.max_chats,
    )
    await services.poke_matchmaker()
    online = await services.presence.online_specialists(time.time())
    return JSONResponse(_profile_json(profile, online))


async def stats(request: Request) -> Response:
    _auth(request, "supervisor")
    current = await dispatch.current_stats(_services(request))
    body = msgspec.json.decode(msgspec.json.encode(current))
    body.pop("type", None)
    return JSONResponse(body)


class StatsHistory:
    """The last hour of (time, waiting, longest wait), sampled by this process."""

    def __init__(self) -> None:
        self.samples: deque[dict[str, Any]] = deque(maxlen=360)

    async def run(self, services: Services, every_s: float = 10.0) -> None:
        while True:
            try:
                current = await dispatch.current_stats(services)
                self.samples.append(
                    {
                        "at": iso(dispatch._now()),
                        "waiting": current.waiting,
                        "longest_wait_s": current.longest_wait_s,
                    }
                )
            except Exception:  # noqa: S110 - a missed sample is fine; the next one comes soon
                pass
            await asyncio.sleep(every_s)


async def stats_history(request: Request) -> Response:
    _auth(request, "supervisor")
    history: StatsHistory = request.app.state.stats_history
    return JSONResponse({"samples": list(history.samples)})


async def conversation_messages(request: Request) -> Response:
    identity = _auth(request)
    services = _services(request)
    conversation_id = request.path_params["conversation_id"]
    try:
        after = int(request.query_params.get("after_seq", "0"))
        limit = min(500, max(1, int(request.query_params.get("limit", "500"))))
    except ValueError:
        return _problem(400, "after_seq and limit must be whole numbers")
    conv = None if _has_nul(conversation_id) else await conversations.get(services.db, conversation_id)
    if identity.role == "supervisor":
        reason = (request.query_params.get("reason") or "").strip()
        if not reason:
            return _problem(403, "a supervisor must give a reason to read a transcript")
        if _has_nul(reason):
            return _problem(400, "a reason may not contain NUL characters")
        if conv is None:
            return _problem(404, "no such conversation")
        # The audit row is written before the transcript leaves: no trace, no read.
        await audit.record(
            services.db,
            actor_id=identity.user_id,
            actor_role=identity.role,
            actor_name=identity.name,
            action="read_transcript",
            conversation_id=conv.id,
            reason=reason[:500],
        )
    elif conv is None or not conv.has(Person(identity.role, identity.user_id)):
        return _problem(404, "no such conversation")
    stored = await conversations.messages_after(services.db, conv.id, after, limit)
    body = {"conversation_id": conv.id, "messages": [msgspec.to_builtins(views.message(m)) for m in stored]}
    return JSONResponse(body)


async def audit_log(request: Request) -> Response:
    _auth(request, "supervisor")
    entries = await audit.recent(_services(request).db)
    return JSONResponse(
        {
            "entries": [
                {
                    "at": iso(e.at),
                    "actor_id": e.actor_id,
                    "actor_name": e.actor_name,
                    "action": e.action,
                    "conversation_id": e.conversation_id,
                    "reason": e.reason,
                }
                for e in entries
            ]
        }
    )


DEFAULT_CRISIS_RESOURCES = [
    {
        "name": "988 Suicide & Crisis Lifeline (US)",
        "contact": "Call or text 988",
        "description": "Free, confidential, 24/7 support.",
    },
    {
        "name": "Emergency services",
        "contact": "911 (US) / 112 (EU)",
        "description": "If you or someone else is in immediate danger.",
    },
]


async def crisis_resources(request: Request) -> Response:
    configured = _services(request).settings.crisis_resources
    resources = DEFAULT_CRISIS_RESOURCES
    if configured:
        try:
            resources = json.loads(configured)
        except ValueError:
            resources = DEFAULT_CRISIS_RESOURCES
    return JSONResponse({"resources": resources})


class DevLogin(msgspec.Struct):
    role: Role
    name: str = ""
    sub: str = ""


async def dev_token(request: Request) -> Response:
    services = _services(request)
    if not services.settings.dev:
        return _problem(404, "not found")
    try:
        login = msgspec.json.decode(await request.body(), type=DevLogin)
    except msgspec.DecodeError as exc:
        return _problem(400, str(exc))
    sub = (login.sub or f"{login.role}-{msgspec.json.encode(time.time_ns()).decode()[-8:]}")[:64]
    token = mint(
        services.settings,
        sub=sub,
        role=login.role,
        name=login.name.strip()[:64] or None,
    )
    return JSONResponse({"token": token, "sub": sub})
