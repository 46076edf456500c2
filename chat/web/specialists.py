"""Specialists' profiles: the list and a profile edit (supervisors), one's own (specialists)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat import people
from chat.stats import roster_state
from chat.store import audit, profiles
from chat.store.db import iso
from chat.web.common import auth, has_control, has_nul, problem, services_of
from protocol import frames as f

MAX_TAGS = 20
MAX_LANGUAGES = 20
MAX_CHATS = 20


def _profile_json(p: profiles.Profile, online: set[str]) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "tags": p.tags,
        "languages": p.languages,
        "max_chats": p.max_chats,
        # offline / available / away / busy: chat/stats.py, shared with queue_stats.
        "status": roster_state(p, online),
        "active_chats": p.active_chats,
        # In wrap-up after a conversation (the safety issue): until when; absent otherwise.
        # Shown next to the state, which stays the queue_stats one (available, busy, away).
        **(
            {"wrap_up_until": iso(p.wrap_up_until)}
            if p.id in online and p.wrap_up_until and p.wrap_up_until > datetime.now(UTC)
            else {}
        ),
    }


async def list_specialists(request: Request) -> Response:
    auth(request, "supervisor")
    services = services_of(request)
    online = await services.presence.online_specialists(time.time())
    return JSONResponse([_profile_json(p, online) for p in await profiles.list_all(services.db)])


async def my_profile(request: Request) -> Response:
    identity = auth(request, "specialist")
    services = services_of(request)
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


def _clean(words: list[str]) -> list[str]:
    return sorted({w.strip().lower() for w in words if w.strip()})


def _profile_values(p: profiles.Profile | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"name": p.name, "tags": p.tags, "languages": p.languages, "max_chats": p.max_chats}


async def put_specialist(request: Request) -> Response:
    identity = auth(request, "supervisor")
    specialist_id = request.path_params["specialist_id"]
    if not 0 < len(specialist_id) <= 64:
        return problem(400, "bad specialist id")
    try:
        edit = msgspec.json.decode(await request.body(), type=ProfileEdit)
    except msgspec.DecodeError as exc:
        return problem(400, f"bad profile: {exc}")
    if has_nul(specialist_id, edit.name, *edit.tags, *edit.languages):
        return problem(400, "text may not contain NUL characters")
    if has_control(specialist_id, edit.name, *edit.tags, *edit.languages):
        return problem(400, "text may not contain control characters")
    name = edit.name.strip()
    languages = _clean(edit.languages)
    if not name:
        return problem(400, "name must be 1 to 64 characters")
    if not languages:
        return problem(400, "at least one language")
    services = services_of(request)
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
        await audit.record_by(
            conn,
            identity,
            action="edit_profile",
            target=specialist_id,
            detail={"before": _profile_values(before), "after": _profile_values(profile)},
        )
    await services.poke_matchmaker()
    online = await services.presence.online_specialists(time.time())
    return JSONResponse(_profile_json(profile, online))


class StatusEdit(msgspec.Struct, forbid_unknown_fields=True):
    # Only "away" (end of shift): a supervisor may take someone off shift, never put an
    # absent person on it (they would be offered members they cannot see).
    status: Literal["away"]


async def put_specialist_status(request: Request) -> Response:
    """PUT /api/specialists/{id}/status {"status":"away"}: the supervisor's "set away". Stored
    and audited together (`set_away`, target the specialist), then echoed to every device of
    theirs on every process as `availability`, as if they had set it themselves."""
    identity = auth(request, "supervisor")
    specialist_id = request.path_params["specialist_id"]
    if not 0 < len(specialist_id) <= 64 or has_nul(specialist_id) or has_control(specialist_id):
        return problem(400, "bad specialist id")
    try:
        edit = msgspec.json.decode(await request.body(), type=StatusEdit)
    except msgspec.DecodeError as exc:
        return problem(400, f"bad status: {exc}")
    services = services_of(request)
    async with services.db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('specialist:' || $1))", specialist_id)
        before = await profiles.get(conn, specialist_id)
        if before is None:
            return problem(404, "no such specialist")
        profile = await profiles.set_status(conn, specialist_id, edit.status)
        assert profile is not None
        await audit.record_by(
            conn,
            identity,
            action="set_away",
            target=specialist_id,
            detail={"before": before.status, "after": profile.status},
        )
    services.hub.to_user(
        people.specialist(specialist_id), f.AvailabilityChanged(status=edit.status, reason="supervisor")
    )
    await services.poke_matchmaker()
    online = await services.presence.online_specialists(time.time())
    return JSONResponse(_profile_json(profile, online))
