"""The HTTP surface (PRODUCT.md §6): health, metrics, profiles, stats, transcripts, audit."""

from __future__ import annotations

import asyncio
import json
import time
import unicodedata
import urllib.parse
from collections import deque
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from chat import stats as stats_view
from chat import views
from chat.metrics import METRICS
from chat.services import Services
from chat.store import audit, conversations, profiles, revocations
from chat.store.db import iso
from chat.tokens import Identity, Role, TokenRejected, mint, verify
from protocol import frames as f
from protocol.names import has_refused_characters

MAX_TAGS = 20
MAX_LANGUAGES = 20
MAX_CHATS = 20
# The reason for a supervisor's transcript read: preferred in this header, as proxies and
# load balancers log query strings (PRODUCT.md §6); `?reason=` still works.
REASON_HEADER = "x-peerchat-reason"
MAX_REASON_CHARS = 500


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
    if _services(request).admission.refuses(identity):
        raise HttpRefusal(_problem(401, "the token was refused"))
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


# Bounded like frames (PRODUCT.md §6): tags as in `request` (≤ 40 chars each, ≤ MAX_TAGS of
# them), language codes ≤ 16. A value out of bounds is refused whole, never trimmed to fit.
ProfileName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class ProfileEdit(msgspec.Struct, forbid_unknown_fields=True):
    name: ProfileName
    tags: Annotated[list[f.Tag], msgspec.Meta(max_length=MAX_TAGS)]
    languages: Annotated[list[f.Language], msgspec.Meta(min_length=1, max_length=MAX_LANGUAGES)]
    max_chats: Annotated[int, msgspec.Meta(ge=1, le=MAX_CHATS)]


def _has_nul(*texts: str) -> bool:
    """PostgreSQL text cannot hold NUL: refuse it up front, not with a 500 from the driver."""
    return any("\x00" in t for t in texts)


def _has_control(*texts: str) -> bool:
    """Control characters (NUL, newlines, escapes) have no place in a name, tag or code."""
    return any(unicodedata.category(ch) == "Cc" for t in texts for ch in t)


def _clean(words: list[str]) -> list[str]:
    return sorted({w.strip().lower() for w in words if w.strip()})


def _profile_values(p: profiles.Profile | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"name": p.name, "tags": p.tags, "languages": p.languages, "max_chats": p.max_chats}


async def put_specialist(request: Request) -> Response:
    identity = _auth(request, "supervisor")
    specialist_id = request.path_params["specialist_id"]
    if not 0 < len(specialist_id) <= 64:
        return _problem(400, "bad specialist id")
    try:
        edit = msgspec.json.decode(await request.body(), type=ProfileEdit)
    except msgspec.DecodeError as exc:
        return _problem(400, f"bad profile: {exc}")
    if _has_nul(specialist_id, edit.name, *edit.tags, *edit.languages):
        return _problem(400, "text may not contain NUL characters")
    if _has_control(specialist_id, edit.name, *edit.tags, *edit.languages):
        return _problem(400, "text may not contain control characters")
    name = edit.name.strip()
    languages = _clean(edit.languages)
    if not name:
        return _problem(400, "name must be 1 to 64 characters")
    if not languages:
        return _problem(400, "at least one language")
    services = _services(request)
    # The edit and its audit row commit together: no edit without its trace, and the
    # "before" is the row this edit replaced, even with two supervisors editing at once.
    async with services.db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('specialist:' || $1))", specialist_id)
        before = await profiles.get(conn, specialist_id)
        profile = await profiles.put(
            conn,
            specialist_id,
            name=name,
            tags=_clean(edit.tags),
            languages=languages,
            max_chats=edit.max_chats,
        )
        await audit.record(
            conn,
            actor_id=identity.user_id,
            actor_role=identity.role,
            actor_name=identity.name,
            action="edit_profile",
            target=specialist_id,
            detail={"before": _profile_values(before), "after": _profile_values(profile)},
        )
    await services.poke_matchmaker()
    online = await services.presence.online_specialists(time.time())
    return JSONResponse(_profile_json(profile, online))


async def stats(request: Request) -> Response:
    _auth(request, "supervisor")
    current = await stats_view.current_stats(_services(request))
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
                current = await stats_view.current_stats(services)
                self.samples.append(
                    {
                        "at": iso(datetime.now(UTC)),
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
        reason = _reason(request)
        if not reason:
            return _problem(403, "a supervisor must give a reason to read a transcript")
        if _has_nul(reason):
            return _problem(400, "a reason may not contain NUL characters")
        if len(reason) > MAX_REASON_CHARS:
            return _problem(400, f"a reason is at most {MAX_REASON_CHARS} characters")
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
            reason=reason,
        )
    elif conv is None or not conv.has(identity.user_id):
        return _problem(404, "no such conversation")
    stored = await conversations.messages_after(services.db, conv.id, after, limit)
    body = {"conversation_id": conv.id, "messages": [msgspec.to_builtins(views.message(m)) for m in stored]}
    return JSONResponse(body)


def _reason(request: Request) -> str:
    """The header wins when both are given; a blank header does not fall back to the query
    (a client that sent the header meant it)."""
    header = request.headers.get(REASON_HEADER)
    if header is not None:
        # Header values arrive as latin-1 bytes; a client sends UTF-8 percent-encoded or
        # plain ASCII. Decode percent-escapes so non-ASCII reasons survive.
        return urllib.parse.unquote(header).strip()
    return (request.query_params.get("reason") or "").strip()


def _bounded_int(raw: str | None, name: str, *, default: int | None, low: int, high: int) -> int | None:
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not low <= int(raw) <= high:
        raise HttpRefusal(_problem(400, f"{name} must be a whole number from {low} to {high}"))
    return int(raw)


async def audit_log(request: Request) -> Response:
    _auth(request, "supervisor")
    before = _bounded_int(request.query_params.get("before"), "before", default=None, low=1, high=2**63 - 1)
    limit = _bounded_int(
        request.query_params.get("limit"), "limit", default=audit.PAGE_DEFAULT, low=1, high=audit.PAGE_MAX
    )
    assert limit is not None
    entries = await audit.page(_services(request).db, before=before, limit=limit)
    return JSONResponse({"entries": [_audit_json(e) for e in entries]})


def _audit_json(e: audit.AuditEntry) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": str(e.id),
        "at": iso(e.at),
        "actor_id": e.actor_id,
        "actor_name": e.actor_name,
        "action": e.action,
    }
    optional = {
        "conversation_id": e.conversation_id,
        "target": e.target,
        "reason": e.reason,
        "detail": e.detail,
    }
    entry.update({k: v for k, v in optional.items() if v is not None})
    return entry


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


class RevocationAsked(msgspec.Struct, forbid_unknown_fields=True):
    role: Role
    sub: str
    reason: str = ""


async def post_revocation(request: Request) -> Response:
    """A supervisor ends a person's access (PRODUCT.md §4): their tokens issued until now
    are refused and every socket of theirs, on every process, is closed with 4001."""
    identity = _auth(request, "supervisor")
    try:
        asked = msgspec.json.decode(await request.body(), type=RevocationAsked)
    except msgspec.DecodeError as exc:
        return _problem(400, f"bad revocation: {exc}")
    if not 0 < len(asked.sub) <= 64 or has_refused_characters(asked.sub):
        return _problem(400, "sub must be 1 to 64 characters, without control characters")
    reason = asked.reason.strip()[:500]
    if has_refused_characters(reason):
        return _problem(400, "reason may not contain control characters")
    services = _services(request)
    row = await revocations.add(
        services.db,
        role=asked.role,
        sub=asked.sub,
        actor_id=identity.user_id,
        actor_role=identity.role,
        actor_name=identity.name,
        reason=reason,
    )
    await services.admission.revocations.revoke(row)
    body = {"id": str(row.id), "role": row.role, "sub": row.sub, "revoked_at": iso(row.revoked_at)}
    return JSONResponse(body, status_code=201)
